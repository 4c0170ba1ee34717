// movierec web page: pick a user or rate a few movies, see recommendation cards.
// Plain DOM (no framework, no build step); every text from the API goes through textContent.
"use strict";

const state = {
  info: null,            // GET /model
  genres: new Set(),     // selected genre filter
  ratings: new Map(),    // item_id -> {movie, rating} of the new profile
  mode: "user",          // "user" | "new"
  lastUser: null,
};

const $ = (id) => document.getElementById(id);

async function api(path, options = {}) {
  const response = await fetch(path, {
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    ...options,
  });
  let body = null;
  try {
    body = await response.json();
  } catch (_) {
    body = null;
  }
  if (!response.ok) {
    const detail = body && body.detail ? body.detail : `${response.status} ${response.statusText}`;
    throw new Error(detail);
  }
  return body;
}

function setStatus(text, isError = false) {
  const el = $("status");
  el.textContent = text;
  el.classList.toggle("error", isError);
}

function el(tag, props = {}, children = []) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "text") node.textContent = value;
    else if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function movieLabel(movie) {
  return movie.year != null && !/\(\d{4}\)\s*$/.test(movie.title)
    ? `${movie.title} (${movie.year})` : movie.title;
}

function kValue() {
  const max = state.info ? state.info.max_k : 100;
  const k = Math.round(Number($("k").value) || 10);
  return Math.min(Math.max(k, 1), max);
}

function genreQuery() {
  return state.genres.size ? [...state.genres].join(",") : null;
}

// --- cards -------------------------------------------------------------------------------------
function renderCards(title, items, kind) {
  $("results-title").textContent = title;
  const box = $("results");
  box.replaceChildren();
  if (!items.length) {
    box.append(el("p", { class: "muted", text: "No movies match (try fewer genre filters)." }));
    return;
  }
  const template = $("card-template");
  for (const item of items) {
    const card = template.content.firstElementChild.cloneNode(true);
    card.dataset.itemId = item.item_id;
    card.querySelector(".title").textContent = `${item.rank}. ${movieLabel(item)}`;
    card.querySelector(".genres").textContent = item.genres.join(" · ") || "no genres listed";
    const score = kind === "similar"
      ? `similarity ${item.similarity.toFixed(3)}`
      : `score ${item.score.toFixed(3)}` + (item.predicted_rating != null
        ? ` · predicted rating ${item.predicted_rating.toFixed(1)}` : "");
    card.querySelector(".score").textContent = score;
    const why = card.querySelector(".why");
    const supports = item.because_you_liked || [];
    if (supports.length) {
      why.textContent = "Because you liked " + supports.map((s) => s.title).join(", ");
      // The service cites only liked movies (movierec.explain.liked_mask): say which those are.
      why.title = "Movies you rated 4 or more, or above your own average rating";
    } else {
      why.remove();
    }
    card.querySelector(".similar").addEventListener("click", () => showSimilar(item));
    box.append(card);
  }
}

async function showSimilar(movie) {
  try {
    const data = await api(`/movies/${movie.item_id}/similar?k=${kValue()}`);
    renderCards(`More like ${movieLabel(data.movie)}`, data.similar, "similar");
    setStatus("");
  } catch (err) {
    setStatus(err.message, true);
  }
}

// --- existing users ----------------------------------------------------------------------------
async function showUser(userId) {
  if (!Number.isInteger(userId)) {
    setStatus("enter a user id", true);
    return;
  }
  state.lastUser = userId;
  setStatus(`loading user ${userId}…`);
  const params = new URLSearchParams({ k: String(kValue()) });
  const genres = genreQuery();
  if (genres) params.set("genres", genres);
  try {
    const [history, recs] = await Promise.all([
      api(`/users/${userId}?limit=30`),
      api(`/users/${userId}/recommendations?${params}`),
    ]);
    const box = $("user-history");
    box.replaceChildren(
      el("strong", { text: `User ${userId} rated ${history.n_ratings} movies: ` }),
      document.createTextNode(history.history.map(movieLabel).join("; ")
        + (history.n_ratings > history.history.length
          ? ` and ${history.n_ratings - history.history.length} more` : "")),
    );
    renderCards(`Recommendations for user ${userId}`, recs.recommendations, "user");
    setStatus("");
  } catch (err) {
    $("user-history").replaceChildren();
    setStatus(err.message, true);
  }
}

// --- new profile -------------------------------------------------------------------------------
function starScale() {
  const scale = state.info && state.info.rating_scale;
  const hi = scale ? Math.round(scale[1]) : 5;
  const lo = scale ? Math.max(1, Math.ceil(scale[0])) : 1;
  const values = [];
  for (let v = lo; v <= hi; v += 1) values.push(v);
  return values;
}

function stars(movie, current) {
  const box = el("span", { class: "stars", role: "group", "aria-label": `Rate ${movie.title}` });
  for (const value of starScale()) {
    const button = el("button", {
      type: "button",
      class: current != null && value <= current ? "on" : "",
      title: `${value}`,
      "aria-label": `${value} stars`,
      "data-testid": `rate-${movie.item_id}-${value}`,
      text: "★",
    });
    button.addEventListener("click", () => rate(movie, value));
    box.append(button);
  }
  return box;
}

function rate(movie, value) {
  state.ratings.set(movie.item_id, { movie, rating: value });
  renderRated();
  renderSearch(lastSearch);
  recommendNew();
}

function renderRated() {
  const list = $("rated");
  list.replaceChildren();
  for (const { movie, rating } of state.ratings.values()) {
    const remove = el("button", { type: "button", class: "link", text: "remove",
                                  "aria-label": `Remove ${movie.title}` });
    remove.addEventListener("click", () => {
      state.ratings.delete(movie.item_id);
      renderRated();
      renderSearch(lastSearch);
      if (state.ratings.size) recommendNew();
    });
    list.append(el("li", { "data-testid": "rated-item" },
      [el("span", { text: movieLabel(movie) }), stars(movie, rating), remove]));
  }
  const n = state.ratings.size;
  $("rated-count").textContent = n ? `(${n})` : "(none yet)";
  $("recommend-new").disabled = n === 0;
}

let lastSearch = [];
let searchTimer = null;
let searchSeq = 0;

function renderSearch(results) {
  lastSearch = results;
  const list = $("search-results");
  list.replaceChildren();
  for (const movie of results) {
    const current = state.ratings.get(movie.item_id);
    list.append(el("li", { "data-testid": "search-result" }, [
      el("span", { text: `${movieLabel(movie)} — ${movie.genres.join(", ")}` }),
      stars(movie, current ? current.rating : null),
    ]));
  }
}

async function search(query) {
  const seq = ++searchSeq;
  if (!query.trim()) {
    renderSearch([]);
    return;
  }
  try {
    const data = await api(`/movies/search?q=${encodeURIComponent(query)}&limit=10`);
    if (seq === searchSeq) {
      renderSearch(data.results);
      if (!data.results.length) setStatus(`no title contains “${query}”`);
      else setStatus("");
    }
  } catch (err) {
    setStatus(err.message, true);
  }
}

let recommendSeq = 0;

async function recommendNew() {
  if (!state.ratings.size) return;
  const seq = ++recommendSeq;
  const body = {
    ratings: [...state.ratings.values()].map(({ movie, rating }) => ({
      item: movie.item_id, rating,
    })),
    k: kValue(),
  };
  const genres = genreQuery();
  if (genres) body.genres = [...state.genres];
  setStatus("recommending…");
  try {
    const data = await api("/recommendations", { method: "POST", body: JSON.stringify(body) });
    if (seq !== recommendSeq) return;
    const how = data.method === "popularity" ? " (popular movies: none of your movies is known)"
      : "";
    renderCards(`Recommendations for your ${data.used_ratings} ratings${how}`,
      data.recommendations, "new");
    setStatus("");
  } catch (err) {
    setStatus(err.message, true);
  }
}

// --- wiring ------------------------------------------------------------------------------------
function selectTab(mode) {
  state.mode = mode;
  $("tab-user").setAttribute("aria-selected", String(mode === "user"));
  $("tab-new").setAttribute("aria-selected", String(mode === "new"));
  $("panel-user").hidden = mode !== "user";
  $("panel-new").hidden = mode !== "new";
  if (mode === "new") $("search").focus();
}

function refresh() {
  if (state.mode === "user" && state.lastUser != null) showUser(state.lastUser);
  if (state.mode === "new") recommendNew();
}

function renderGenres(names) {
  const box = $("genres");
  for (const name of names) {
    const chip = el("button", { type: "button", class: "chip", "aria-pressed": "false",
                                text: name });
    chip.addEventListener("click", () => {
      const on = !state.genres.has(name);
      if (on) state.genres.add(name); else state.genres.delete(name);
      chip.setAttribute("aria-pressed", String(on));
      refresh();
    });
    box.append(chip);
  }
}

async function init() {
  $("tab-user").addEventListener("click", () => selectTab("user"));
  $("tab-new").addEventListener("click", () => selectTab("new"));
  $("user-form").addEventListener("submit", (event) => {
    event.preventDefault();
    showUser(Number($("user-id").value));
  });
  $("search").addEventListener("input", (event) => {
    clearTimeout(searchTimer);
    const query = event.target.value;
    searchTimer = setTimeout(() => search(query), 200);
  });
  $("recommend-new").addEventListener("click", recommendNew);
  $("clear-ratings").addEventListener("click", () => {
    state.ratings.clear();
    renderRated();
    renderSearch(lastSearch);
    $("results").replaceChildren();
  });
  $("k").addEventListener("change", refresh);
  try {
    state.info = await api("/model");
    const info = state.info;
    const dataset = info.dataset ? ` trained on ${info.dataset}` : "";
    const when = info.trained_at ? ` (${info.trained_at})` : "";
    $("model-info").textContent = `${info.name}${dataset}${when}: `
      + `${info.n_users.toLocaleString()} users, ${info.n_items.toLocaleString()} movies`;
    $("k").max = String(info.max_k);
    renderGenres(info.genres);
    const users = await api("/users?limit=200");
    const list = $("user-ids");
    for (const id of users.user_ids) list.append(el("option", { value: String(id) }));
    $("random-user").addEventListener("click", async () => {
      const offset = Math.floor(Math.random() * users.n_users);
      const page = await api(`/users?offset=${offset}&limit=1`);
      $("user-id").value = String(page.user_ids[0]);
      showUser(page.user_ids[0]);
    });
  } catch (err) {
    setStatus(`cannot reach the service: ${err.message}`, true);
  }
}

document.addEventListener("DOMContentLoaded", init);
