// movierec web page: pick a user or rate a few movies, see recommendation cards.
// Plain DOM (no framework, no build step); every text from the API goes through textContent.
"use strict";

const state = {
  info: null,            // GET /model
  genres: new Set(),     // selected genre filter
  ratings: new Map(),    // item_id -> {movie, rating} of the new profile
  mode: "user",          // "user" | "new"
  lastUser: null,
  store: false,          // the server stores ratings (GET /health says "store")
  stored: new Map(),     // item_id -> rating stored for state.lastUser
};

const $ = (id) => document.getElementById(id);

async function api(path, options = {}) {
  const headers = { "Content-Type": "application/json", Accept: "application/json" };
  const key = localStorage.getItem("movierec-api-key");
  if (key) headers["X-API-Key"] = key;
  const response = await fetch(path, { headers, ...options });
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
    if (kind === "user" && state.store) {
      card.append(stars(item, null, (value) => storeRating(item, value), "card-rate"));
    }
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
      // A profile created through the API has no training history: 404 means none.
      state.store ? api(`/users/${userId}?limit=30`).catch(() => null)
        : api(`/users/${userId}?limit=30`),
      api(`/users/${userId}/recommendations?${params}`),
    ]);
    const box = $("user-history");
    if (history) {
      box.replaceChildren(
        el("strong", { text: `User ${userId} rated ${history.n_ratings} movies: ` }),
        document.createTextNode(history.history.map(movieLabel).join("; ")
          + (history.n_ratings > history.history.length
            ? ` and ${history.n_ratings - history.history.length} more` : "")),
      );
    } else {
      box.replaceChildren(el("strong", { text: `Profile ${userId} (created here)` }));
    }
    if (state.store) {
      localStorage.setItem("movierec-user", String(userId));
      await showStored(userId);
    }
    const how = recs.method === "popularity" ? " (popular movies: rate some to personalise)"
      : recs.feedback === "unavailable" ? " (stored ratings unavailable right now)" : "";
    renderCards(`Recommendations for user ${userId}${how}`, recs.recommendations, "user");
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

function stars(movie, current, onRate = null, prefix = "rate") {
  const box = el("span", { class: "stars", role: "group", "aria-label": `Rate ${movie.title}` });
  for (const value of starScale()) {
    const button = el("button", {
      type: "button",
      class: current != null && value <= current ? "on" : "",
      title: `${value}`,
      "aria-label": `${value} stars`,
      "data-testid": `${prefix}-${movie.item_id}-${value}`,
      text: "★",
    });
    button.addEventListener("click", () => (onRate ? onRate(value) : rate(movie, value)));
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

// --- stored ratings (servers with a store) -----------------------------------------------------
async function showStored(userId) {
  const data = await api(`/users/${userId}/ratings`);
  state.stored = new Map(data.ratings.map((r) => [r.item_id, r.rating]));
  const list = $("stored");
  list.replaceChildren();
  for (const r of data.ratings) {
    const movie = { item_id: r.item_id, title: r.title || `movie ${r.item_id}` };
    const remove = el("button", { type: "button", class: "link", text: "remove",
                                  "aria-label": `Remove ${movie.title}`,
                                  "data-testid": `unrate-${r.item_id}` });
    remove.addEventListener("click", () => deleteRating(movie));
    list.append(el("li", { "data-testid": "stored-rating", "data-item-id": String(r.item_id) },
      [el("span", { text: `${movie.title}: ${r.rating}` }),
        stars(movie, r.rating, (value) => storeRating(movie, value), "stored-rate"), remove]));
  }
  $("stored-count").textContent = data.n_ratings ? `(${data.n_ratings})` : "(none yet)";
  $("feedback").hidden = false;
}

async function storeRating(movie, value) {
  if (state.lastUser == null) return;
  try {
    await api(`/users/${state.lastUser}/ratings/${movie.item_id}`, {
      method: "PUT", body: JSON.stringify({ rating: value }),
    });
    setStatus(`stored: ${movie.title} ${value}`);
    await showUser(state.lastUser);
  } catch (err) {
    setStatus(err.message, true);
  }
}

async function deleteRating(movie) {
  try {
    await api(`/users/${state.lastUser}/ratings/${movie.item_id}`, { method: "DELETE" });
    await showUser(state.lastUser);
  } catch (err) {
    setStatus(err.message, true);
  }
}

let feedbackTimer = null;

async function feedbackSearch(query) {
  const list = $("feedback-results");
  list.replaceChildren();
  if (!query.trim()) return;
  try {
    const data = await api(`/movies/search?q=${encodeURIComponent(query)}&limit=10`);
    for (const movie of data.results) {
      list.append(el("li", { "data-testid": "feedback-result" }, [
        el("span", { text: movieLabel(movie) }),
        stars(movie, state.stored.get(movie.item_id) ?? null,
          (value) => storeRating(movie, value), "search-rate"),
      ]));
    }
  } catch (err) {
    setStatus(err.message, true);
  }
}

async function setUpStore() {
  const health = await api("/health");
  state.store = health.store != null;
  if (!state.store) return;
  $("create-profile").hidden = false;
  $("api-key").value = localStorage.getItem("movierec-api-key") || "";
  $("api-key").addEventListener("change", (event) => {
    localStorage.setItem("movierec-api-key", event.target.value.trim());
  });
  $("create-profile").addEventListener("click", async () => {
    try {
      const created = await api("/users", { method: "POST" });
      $("user-id").value = String(created.user_id);
      await showUser(created.user_id);
      setStatus(`created profile ${created.user_id}: rate some movies`);
    } catch (err) {
      setStatus(err.message, true);
    }
  });
  $("feedback-search").addEventListener("input", (event) => {
    clearTimeout(feedbackTimer);
    const query = event.target.value;
    feedbackTimer = setTimeout(() => feedbackSearch(query), 200);
  });
  const saved = Number(localStorage.getItem("movierec-user"));
  if (saved && Number.isInteger(saved)) {
    $("user-id").value = String(saved);
    await showUser(saved);
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
    await setUpStore();
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
