"""Title search: the one lookup behind `movierec similar --movie` and the API's /movies/search.

MovieLens stores titles the way library catalogues sort them: "Godfather, The (1972)",
"Misérables, Les (1995)", "City of Lost Children, The (Cité des enfants perdus, La) (1995)".
A title and a query are compared through the same normal form:

- accents removed and case folded ("amelie" finds "Amélie");
- apostrophes dropped and every other punctuation mark made a space, spaces collapsed
  ("schindlers list" and "Schindler's List" agree, "star wars episode iv" finds
  "Star Wars: Episode IV - A New Hope");
- a trailing article of the main title and of each alternative title in parentheses moved to
  the front ("Godfather, The" is also "the godfather"), for English (The, A, An) and the
  articles MovieLens titles use in other languages (Le, La, Les, L', El, Los, Las, Il, Lo,
  Gli, Der, Die, Das, Ein, Eine, Un, Une, Una, Det, Den, Het, De).

A title matches when the query is part of it (as stored or with its articles moved). It
matches *exactly* when the query without its "(year)" is the main or an alternative title
(its article in front, or left out where MovieLens had moved it to the end: "The Godfather" and
"Godfather" both name "Godfather, The (1972)", "Hard" does not name "Die Hard"); a query with a
"(year)" also needs that year.
Results come exact matches first, then titles that start with the query, then the most popular
(when popularity is given), then in catalogue order.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["ARTICLES", "TitleIndex", "normalize"]

#: Articles that MovieLens moves to the end of a title (lower case, as normalized).
ARTICLES = ("the", "a", "an", "le", "la", "les", "l'", "el", "los", "las", "il", "lo", "gli",
            "der", "die", "das", "ein", "eine", "un", "une", "una", "det", "den", "het")
_ARTICLE_GROUP = "|".join(re.escape(a) for a in sorted(ARTICLES, key=len, reverse=True))
# "Godfather, The" / "Fabuleux destin d'Amélie Poulain, Le": a trailing ", <article>".
_TRAILING_ARTICLE = re.compile(rf"^(?P<name>.*\S),\s*(?P<article>{_ARTICLE_GROUP})$",
                               re.IGNORECASE)
_GROUP_AT_END = re.compile(r"\s*\(([^()]*)\)\s*$")
_YEAR = re.compile(r"^(\d{4})(?:\s*[-–/][^()]*)?$")  # "1995", "2006–2007", "1995/I"
_APOSTROPHES = re.compile(r"['’`´]")
_NOT_WORD = re.compile(r"[\W_]+")


def normalize(text: str) -> str:
    """The comparable form of a title or query: no accents, case folded, no punctuation."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
    return _NOT_WORD.sub(" ", _APOSTROPHES.sub("", plain)).strip()


def _front_article(name: str) -> tuple[str, str | None]:
    """("The Godfather", "Godfather") for "Godfather, The"; (name, None) without one."""
    name = name.strip()
    match = _TRAILING_ARTICLE.match(name)
    if match is None:
        return name, None
    article = match["article"]
    return f"{article}{'' if article.endswith(chr(39)) else ' '}{match['name']}", match["name"]


@dataclass(frozen=True)
class _Parsed:
    names: tuple[str, ...]  # main title, then alternative titles, as written
    year: int | None


def _parse(title: str) -> _Parsed:
    """Split "Main, The (Alt, La) (1995)" into its titles and year."""
    alts: list[str]
    rest, alts, year = title.strip(), [], None
    while (match := _GROUP_AT_END.search(rest)) is not None and match.start() > 0:
        inner = match[1].strip()
        found = _YEAR.match(inner)
        if found is not None and year is None and not alts:
            year = int(found[1])
        elif inner and not re.fullmatch(r"[A-Z]{1,2}", inner):  # "(V)", "(TV)": not a title
            alts.insert(0, inner.removeprefix("a.k.a. "))
        rest = rest[:match.start()]
    return _Parsed(names=(rest, *alts), year=year)


class TitleIndex:
    """Titles prepared once for many searches.

    Args:
        titles: the catalogue's titles, in its order (positions are what `search` returns).
        popularity: optional number of ratings per title, the tie-breaker after exact and prefix
            matches (default: catalogue order only).
    """

    def __init__(self, titles: Sequence[str], popularity: np.ndarray | None = None) -> None:
        self._stored: list[str] = []
        self._moved: list[str] = []
        self._years = np.full(len(titles), -1, dtype=np.int64)
        self._exact: dict[str, list[int]] = {}
        for pos, title in enumerate(titles):
            text = str(title) if title is not None else ""
            parsed = _parse(text)
            self._years[pos] = -1 if parsed.year is None else parsed.year
            forms = [_front_article(name) for name in parsed.names]
            self._stored.append(normalize(text))
            self._moved.append(normalize(" ".join(front for front, _ in forms)))
            # Exact keys: each title with its article in front and, where MovieLens had moved
            # the article to the end, without it ("the godfather", "godfather"); a title that
            # starts with a word such as "Die" ("Die Hard") keeps it.
            for front, bare in forms:
                for key in {normalize(front), normalize(bare or "")} - {""}:
                    spots = self._exact.setdefault(key, [])
                    if not spots or spots[-1] != pos:
                        spots.append(pos)
        n = len(titles)
        self._popularity = (np.zeros(n) if popularity is None
                            else np.asarray(popularity, dtype=np.float64))
        if len(self._popularity) != n:
            raise ValueError(f"popularity has {len(self._popularity)} values for {n} titles")

    def __len__(self) -> int:
        return len(self._stored)

    def exact(self, query: str) -> np.ndarray:
        """Positions of the titles the query names exactly (see the module docstring)."""
        parsed = _parse(query)
        key = normalize(_front_article(parsed.names[0])[0])
        if not key:
            return np.empty(0, dtype=np.int64)
        spots = np.asarray(self._exact.get(key, []), dtype=np.int64)
        if parsed.year is not None:
            spots = spots[self._years[spots] == parsed.year]
        return spots

    def search(self, query: str, limit: int | None = None) -> np.ndarray:
        """Positions of the matching titles, best first (see the module docstring).

        Args:
            query: part of a title, in any case, with or without accents, punctuation, its
                article in front or behind, and its "(year)".
            limit: most positions returned (default: all).

        Returns:
            int64 positions; none for a query without a letter or digit.
        """
        q = normalize(query)
        if not q:
            return np.empty(0, dtype=np.int64)
        exact = self.exact(query)
        hit = np.fromiter(((q in s) or (q in m) for s, m in zip(self._stored, self._moved,
                                                                 strict=True)),
                          dtype=bool, count=len(self))
        hit[exact] = True
        codes = np.flatnonzero(hit)
        is_exact = np.isin(codes, exact)
        prefix = np.fromiter((self._stored[c].startswith(q) or self._moved[c].startswith(q)
                              for c in codes.tolist()), dtype=bool, count=len(codes))
        order = np.lexsort((codes, -self._popularity[codes], ~prefix, ~is_exact))
        picked = codes[order]
        return picked if limit is None else picked[:limit]
