"""Which pieces of a secret are specific enough to be masked wherever they appear.

A parser or a tool may cut a secret at its delimiters and print a piece of it alone, so the
runs of a secret between its delimiters are masked too (`secrets._fragments`). But a secret
such as `https://hooks.slack.com/services/T0/B0/Xk9...` is made mostly of text that every run
prints anyway: masking its pieces `https` or `services` everywhere mangled the whole output.

A piece is masked on its own only when it is specific (docs/reliability.md, "What is
redacted"): after dropping the words any URL or command line holds (`COMMON_WORDS`: schemes,
`www`, top-level domains, path words such as `api`, `hooks`, `services`, `v1`), what is left
is at least MIN_PLAIN characters, or MIN_MIXED characters mixing letters and digits, and a
guesser needs at least 10**min(len, GUESS_FLOOR_LOG10) guesses for it. The number of guesses
is zxcvbn's estimate (dictionaries of words, names and common passwords, dates, keyboard
walks, repeats and sequences) for each word, multiplied over the words of the piece.
"""

from __future__ import annotations

import re
from functools import lru_cache

MIN_MIXED = 4  # a piece shorter than this is never masked on its own (the whole secret is)
MIN_PLAIN = 6  # letters only or digits only: shorter pieces are words and numbers
GUESS_FLOOR_LOG10 = 6.0  # a million guesses (20 bits): words, names, dates and weak passwords are below
_MAX_WORD = 72  # zxcvbn's own bound: a longer word counts as its first 72 characters

# Words that any URL, connection string or command line holds, whoever's secret it is.
_SCHEMES = ("http https ftp ftps sftp ssh scp git svn ws wss file mailto ldap ldaps smtp smtps imap imaps pop3 "
            "redis rediss postgres postgresql mysql mariadb mongodb mongo srv amqp amqps kafka nats s3 gs jdbc "
            "odbc tcp udp unix grpc")
_HOSTS = ("www www2 api apis app apps com org net edu gov mil int io dev co uk us eu de fr nl ch info biz "
          "cloud local localhost localdomain lan corp home svc cluster default example test invalid")
_PATHS = ("hooks hook webhook webhooks services service auth oauth oauth2 login logout callback rest graphql "
          "health healthz readyz livez status metrics admin user users bot bots chat send message messages "
          "notify incoming events event json xml html index public private static token tokens key keys "
          "secret secrets password passwd user username v1 v2 v3 v4 kubernetes k8s docker")
COMMON_WORDS = frozenset(f"{_SCHEMES} {_HOSTS} {_PATHS}".split())
_VERSION = re.compile(r"v\d{1,3}")  # /api/v12/
_WORDS = re.compile(r"[\W_]+")  # a piece's words: dots, dashes and underscores cut too


def is_specific(piece: str) -> bool:
    """Whether `piece` of a secret is specific enough to be masked wherever it appears."""
    return _is_specific(piece)


@lru_cache(maxsize=8192)
def _is_specific(piece: str) -> bool:
    words = [w for w in _WORDS.split(piece) if w and not _common(w.casefold())]
    rest = "".join(words)
    mixed = any(c.isalpha() for c in rest) and any(c.isdigit() for c in rest)
    if len(rest) < (MIN_MIXED if mixed else MIN_PLAIN):
        return False
    return sum(_guesses_log10(w) for w in words) >= min(GUESS_FLOOR_LOG10, len(rest))


def _common(word: str) -> bool:
    return word in COMMON_WORDS or _VERSION.fullmatch(word) is not None


@lru_cache(maxsize=16384)
def _guesses_log10(word: str) -> float:
    """log10 of the guesses zxcvbn estimates for `word` (imported here: it loads its word
    lists, 65 ms, which `opsbook --version` and secrets without delimiters never need)."""
    from zxcvbn import zxcvbn

    return float(zxcvbn(word[:_MAX_WORD])["guesses_log10"])
