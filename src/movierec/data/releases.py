"""The MovieLens releases movierec knows: where each archive lives, how to check it, its layout.

Checksums of the archives were confirmed against several independent open-source projects that
pin them (dataset loaders, course and benchmark repositories); the md5 values are the ones GroupLens
publishes beside each zip (`<archive>.zip.md5`). Where no value is pinned here (ml-latest, whose
content changes with every refresh), `movierec.data.download.fetch` reads the published `.md5` file
beside the archive instead. The per-file sha256 of ml-100k and ml-latest-small let a local copy be
verified without its archive (`load(..., verify=True)`).

HetRec 2011's MovieLens-2k archive (`hetrec-ml-2k`) lives in another folder of the GroupLens
server, holds its files at the top level (no folder inside the zip) and has no checksum that could
be confirmed here nor a published `.md5` beside it: its `published_md5` is False, so a download is
extracted with a warning that gives the archive's sha256, for the user to compare.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from movierec.errors import DataError

Layout = Literal["ml100k", "ml1m", "csv", "hetrec"]

DEFAULT_BASE_URL = "https://files.grouplens.org/datasets/movielens/"
HETREC_BASE_URL = "https://files.grouplens.org/datasets/hetrec2011/"

CITATION = (
    "F. Maxwell Harper and Joseph A. Konstan. 2015. The MovieLens Datasets: History and Context. "
    "ACM Transactions on Interactive Intelligent Systems (TiiS) 5, 4: 19:1-19:19. "
    "https://doi.org/10.1145/2827872"
)
HETREC_CITATION = (
    "Ivan Cantador, Peter Brusilovsky and Tsvi Kuflik. 2011. 2nd Workshop on Information "
    "Heterogeneity and Fusion in Recommender Systems (HetRec 2011). In Proceedings of the 5th ACM "
    "Conference on Recommender Systems (RecSys 2011). Data: MovieLens (GroupLens, "
    + CITATION.split(" https")[0] + "), IMDb (http://www.imdb.com) and Rotten Tomatoes "
    "(http://www.rottentomatoes.com)."
)

#: The file whose presence identifies each layout family, and its ratings file.
RATINGS_FILE: Mapping[str, str] = MappingProxyType(
    {"ml100k": "u.data", "ml1m": "ratings.dat", "csv": "ratings.csv",
     "hetrec": "user_ratedmovies-timestamps.dat"}
)


@dataclass(frozen=True)
class Release:
    """One official MovieLens release.

    Attributes:
        name: the release's name in movierec ("ml-100k").
        archive: file name of the zip on the GroupLens server ("ml-100k.zip").
        folder: name of the folder inside the archive ("ml-10M100K" for ml-10m); for a flat
            archive, the folder its files are extracted into.
        layout: reader family: "ml100k" (u.data, u.item, u.user), "ml1m" (`::`-separated .dat
            files of ml-1m and ml-10m), "csv" (ratings.csv, movies.csv, tags.csv, links.csv) or
            "hetrec" (HetRec 2011's tab-separated .dat files with a header line).
        rating_scale: (lowest, highest) rating.
        tables: side tables the release has, among "items", "users", "tags", "links".
        md5: md5 of the archive as GroupLens publishes it, or None when not pinned.
        sha256: sha256 of the archive, or None when not pinned.
        files_sha256: sha256 of each data file of the extracted folder, where known.
        description: one line about the release.
        citation: how to cite the data.
        base_url: server folder of the archive (default: GroupLens's movielens folder).
        flat: the archive holds its files at the top level instead of inside `folder`.
        published_md5: whether GroupLens publishes `<archive>.md5` beside the archive; when False
            and nothing is pinned, a download is used unverified, with a warning.
    """

    name: str
    archive: str
    folder: str
    layout: Layout
    rating_scale: tuple[float, float]
    tables: tuple[str, ...]
    md5: str | None = None
    sha256: str | None = None
    files_sha256: Mapping[str, str] = field(default_factory=dict)
    description: str = ""
    citation: str = CITATION
    base_url: str | None = None
    flat: bool = False
    published_md5: bool = True

    def url(self, base_url: str | None = None) -> str:
        """URL of the archive under `base_url` (default: the release's GroupLens folder)."""
        base = base_url or self.base_url or DEFAULT_BASE_URL
        return base.rstrip("/") + "/" + self.archive

    @property
    def ratings_file(self) -> str:
        """Name of the ratings file inside the release folder."""
        return RATINGS_FILE[self.layout]


_ML100K_FILES = MappingProxyType({
    "README": "4883b8cf340ed0059971b33f56ad3adc88a40792108ebca3d24aafc4c82e8b52",
    "u.data": "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490",
    "u.genre": "9757e0d3e6b298159a80dd48eaf938114690e911e39af97a76949ef1663610bb",
    "u.info": "5b0a40b2e47a729ee6203063f6dcf8790c2e63f5a18663e6ee318a72c5f3c27b",
    "u.item": "553841ebc7de3a0fd0d6b62a204ea30c1e651aacfb2814c7a6584ac52f2c5701",
    "u.occupation": "cd5fbec9afe345d993a62fc7817df1a4a9079c4feb267b3118763b8fd942137d",
    "u.user": "f120e114da2e8cf314fd28f99417c94ae9ddf1cb6db8ce0e4b5995d40e90e62c",
    "u1.base": "ce253ec86c448b44fb3ba9a30d12dcfc2e9210cbde71efada3730c22e9ac212a",
    "u1.test": "18c6014a4b2c7324f250a63f8904a7b16b2b19f911129e346141507b0cbac950",
    "u2.base": "6c06f0b5df4b256da1a994f3ac66edc8da4d3f09bc9282df6b14d893366d703e",
    "u2.test": "4de658d1e04ed9104629509a2e2528fce833ac8e048280183f1df167632038c3",
    "u3.base": "afdc155c291c6edc41c0407e39d7462eb98d341e064f0b0a12175b80b3c4af5d",
    "u3.test": "0f548b51c78327de4c156461d3e430b7e5579fe2b5681586a59416e48fd35f6d",
    "u4.base": "219f0f4d40dfe9c5141d425f53fa91ee23ed275f14e280bbf1b50117afb064ca",
    "u4.test": "7c02ad0a1e7ab1083c8b9d4b627203a051dd7b5eab46d99fa44de33470de8db9",
    "u5.base": "a9574e59ce961eec2121627760b6e9b0974ce1637b3fe69ac32cb14a4bfab485",
    "u5.test": "351cc52e0d15b6c721466276fc24671d40936899e3d01fadeaf312915b8c5634",
    "ua.base": "67b5bcdb380c29f85d56a012ecd88612ae020f30a6730d117a334ee8203b91f2",
    "ua.test": "d0497e202417720f57a184ec8c66be2d1afa4ff41bb53787c57b28d6bf79bc42",
    "ub.base": "237254d253b6ad7de84f919d041055428646254f34ed8f562703c899430cd881",
    "ub.test": "d54a72d05730d5892062734b2bec73e976f9b713d18c828a18b968d6cce442da",
})

_ML_LATEST_SMALL_FILES = MappingProxyType({
    "README.txt": "63d22ac138e80fae37021797ed8e1b9424b5239dc576a137422adf783ae3f404",
    "links.csv": "97ad18e4e56a09363c65676b6cb3482ce3e2cea2372a24620c1599c843325f31",
    "movies.csv": "5a5f32dd9bb3797b8e728a1b98958789d2b13f294a69fdfbc5727f8a9611aa07",
    "ratings.csv": "aa289ca83157595d0df6aea1be6a4ded676ddc4385472e8313a8ed9805352646",
    "tags.csv": "92a9f8bb7916dceef6151209845788c3643f794dfa79d1feaec7121b5960399d",
})

_ALL = ("items", "tags", "links")

RELEASES: Mapping[str, Release] = MappingProxyType({
    r.name: r
    for r in (
        Release(
            "ml-100k", "ml-100k.zip", "ml-100k", "ml100k", (1.0, 5.0), ("items", "users"),
            md5="0e33842e24a9c977be4e0107933c0723",
            sha256="50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229",
            files_sha256=_ML100K_FILES,
            description="100,000 ratings (1-5) by 943 users on 1,682 movies, 1997-1998.",
        ),
        Release(
            "ml-1m", "ml-1m.zip", "ml-1m", "ml1m", (1.0, 5.0), ("items", "users"),
            md5="c4d9eecfca2ab87c1945afe126590906",
            sha256="a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20",
            description="1,000,209 ratings (1-5) by 6,040 users on 3,706 movies, 2000-2003.",
        ),
        Release(
            "ml-10m", "ml-10m.zip", "ml-10M100K", "ml1m", (0.5, 5.0), ("items", "tags"),
            md5="ce571fd55effeba0271552578f2648bd",
            sha256="813c411ccb6122564edfe752e7f80c4dcc5aa25fa94c93622f6877a7ba252862",
            description="10,000,054 half-star ratings and 95,580 tags by 71,567 users; no users.",
        ),
        Release(
            "ml-20m", "ml-20m.zip", "ml-20m", "csv", (0.5, 5.0), _ALL,
            md5="cd245b17a1ae2cc31bb14903e1204af3",
            sha256="96f243c338a8665f6bcc89c53edf6ee39162a846940de6b7c8c48aeada765ff3",
            description="20,000,263 ratings and 465,564 tags by 138,493 users on 27,278 movies.",
        ),
        Release(
            "ml-25m", "ml-25m.zip", "ml-25m", "csv", (0.5, 5.0), _ALL,
            md5="6b51fb2759a8657d3bfcbfc42b592ada",
            sha256="8b21cfb7eb1706b4ec0aac894368d90acf26ebdfb6aced3ebd4ad5bd1eb9c6aa",
            description="25,000,095 ratings by 162,541 users on 59,047 movies, 1995-2019.",
        ),
        Release(
            "ml-32m", "ml-32m.zip", "ml-32m", "csv", (0.5, 5.0), _ALL,
            md5="d472be332d4daa821edc399621853b57",
            sha256="e4a68655d7386b8f95f2f2424b2ff975dfdd15ffd59e0d864a14dca43e99d6ee",
            description="32,000,204 ratings by 200,948 users on 84,432 movies, 1995-2023.",
        ),
        Release(
            "ml-latest-small", "ml-latest-small.zip", "ml-latest-small", "csv", (0.5, 5.0), _ALL,
            sha256="696d65a3dfceac7c45750ad32df2c259311949efec81f0f144fdfb91ebc9e436",
            files_sha256=_ML_LATEST_SMALL_FILES,
            description="100,836 ratings by 610 users on 9,742 movies (release of 2018-09-26).",
        ),
        Release(
            "ml-latest", "ml-latest.zip", "ml-latest", "csv", (0.5, 5.0), _ALL,
            description="The full latest release; changes over time, so it is not pinned.",
        ),
        Release(
            "hetrec-ml-2k", "hetrec2011-movielens-2k-v2.zip", "hetrec2011-movielens-2k-v2",
            "hetrec", (0.5, 5.0), ("items", "tags"),
            description="HetRec 2011: 855,598 ratings by 2,113 users on 10,197 movies, with IMDb "
                        "ids, directors, actors, countries and Rotten Tomatoes scores.",
            citation=HETREC_CITATION, base_url=HETREC_BASE_URL, flat=True, published_md5=False,
        ),
    )
})


def get_release(name: str) -> Release:
    """The Release called `name`.

    Raises:
        DataError: the name is not a known release; the message lists the known names.
    """
    try:
        return RELEASES[name]
    except KeyError:
        raise DataError(
            f"unknown MovieLens release {name!r}; known releases: {', '.join(RELEASES)}"
        ) from None


def release_for_folder(folder_name: str) -> Release | None:
    """The release whose archive folder (or name) is `folder_name`, or None."""
    for r in RELEASES.values():
        if folder_name in (r.folder, r.name):
            return r
    return None
