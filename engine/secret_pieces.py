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
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

MIN_MIXED = 4  # a piece shorter than this is never masked on its own (the whole secret is)
MIN_PLAIN = 6  # letters only or digits only: shorter pieces are words and numbers
GUESS_FLOOR_LOG10 = 6.0  # a million guesses (20 bits): words, names, dates and weak passwords are below
_MAX_WORD = 72  # zxcvbn's own bound: a longer word counts as its first 72 characters
_HEAD = 10  # a longer word is measured by its first 10 characters first (see _guesses_log10)

# Words that any URL, connection string or command line holds, whoever's secret it is.
_SCHEMES = ("http https ftp ftps sftp ssh scp git svn ws wss file mailto ldap ldaps smtp smtps imap imaps pop3 "
            "redis rediss postgres postgresql mysql mariadb mongodb mongo srv amqp amqps kafka nats s3 gs jdbc "
            "odbc tcp udp unix grpc")
_HOSTS = ("www www2 api apis app apps com org net edu gov mil int io dev co uk us eu de fr nl ch info biz "
          "cloud local localhost localdomain lan corp home svc cluster default example test invalid")
_PATHS = ("hooks hook webhook webhooks services service auth oauth oauth2 login logout callback rest graphql "
          "health healthz readyz livez status metrics admin user users bot bots chat send message messages "
          "notify incoming events event json xml html index public private static token tokens key keys "
          "secret secrets password passwd username v1 v2 v3 v4 kubernetes k8s docker")
_ARMOR = "begin end openssh rsa dsa ec ecdsa ed25519 pgp certificate encrypted"  # PEM lines of a key
COMMON_WORDS = frozenset(f"{_SCHEMES} {_HOSTS} {_PATHS} {_ARMOR}".split())
_VERSION = re.compile(r"v\d{1,3}")  # /api/v12/
_WORDS = re.compile(r"[\W_]+")  # a piece's words: dots, dashes and underscores cut too


@dataclass(frozen=True)
class Segment:
    """What is left of one run between two delimiters once its common words are dropped:
    its length, whether it has letters and digits, and log10 of its guesses."""

    length: int
    alpha: bool
    digit: bool
    guesses_log10: float


def is_specific(piece: str) -> bool:
    """Whether `piece` of a secret is specific enough to be masked wherever it appears."""
    return Runs([piece]).specific(0, 0)


@lru_cache(maxsize=8192)
def segment(text: str) -> Segment:
    """`text` measured for `Runs` (delimiters cut words, so a run's words are its segments'
    words and a run is measured by adding its segments up)."""
    words = [w for w in _WORDS.split(text) if w and not _common(w.casefold())]
    rest = "".join(words)
    return Segment(len(rest), any(c.isalpha() for c in rest), any(c.isdigit() for c in rest),
                   sum(_guesses_log10(w) for w in words))


class Runs:
    """The segments of a secret between its delimiters, added up so that whether the run of
    segments first..last is specific (see the module's docstring) costs the same for any
    run (a private key has thousands of runs)."""

    def __init__(self, segments: Sequence[str]) -> None:
        self._length, self._alpha, self._digit, self._log10 = [0], [0], [0], [0.0]
        for seg in map(segment, segments):
            self._length.append(self._length[-1] + seg.length)
            self._alpha.append(self._alpha[-1] + seg.alpha)
            self._digit.append(self._digit[-1] + seg.digit)
            self._log10.append(self._log10[-1] + seg.guesses_log10)

    def specific(self, first: int, last: int) -> bool:
        """Whether the run of segments first..last (and the delimiters between them) is specific."""
        end = last + 1
        length = self._length[end] - self._length[first]
        mixed = self._alpha[end] > self._alpha[first] and self._digit[end] > self._digit[first]
        if length < (MIN_MIXED if mixed else MIN_PLAIN):
            return False
        return self._log10[end] - self._log10[first] >= min(GUESS_FLOOR_LOG10, length)


def _common(word: str) -> bool:
    return word in COMMON_WORDS or _VERSION.fullmatch(word) is not None


@lru_cache(maxsize=16384)
def _guesses_log10(word: str) -> float:
    """log10 of the guesses zxcvbn estimates for `word` (imported here: it loads its word
    lists, 65 ms, which `opsbook --version` and secrets without delimiters never need).
    zxcvbn's time grows fast with the length (1 ms for 10 characters, 7 ms for 16, 0.4 s for 70):
    a long word is first measured by its head, enough when the head alone passes the floor."""
    from zxcvbn import zxcvbn

    if len(word) > _HEAD:
        head = float(zxcvbn(word[:_HEAD])["guesses_log10"])
        if head >= GUESS_FLOOR_LOG10:
            return head
    return float(zxcvbn(word[:_MAX_WORD])["guesses_log10"])
