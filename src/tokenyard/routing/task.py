"""What a chat request is about, and what it relies on, read from the canonical body.

:func:`classify` is a fast rule table, not a model: each rule that fires adds its weight to
one task, cues in the system prompt count half, and the heaviest task wins (ties go to the
more specific task). It reads the last user message mostly, and at most
:data:`SCAN_HEAD` + :data:`SCAN_TAIL` characters of it, so a long document costs no more
than a short one. :func:`needs` lists the capabilities a model must declare to serve it.
"""

from __future__ import annotations

import re

from tokenyard.immutable import immutable
from tokenyard.wire.json import JSONObject
from tokenyard.wire.tokens import content_text

TASKS = ("coding", "extraction", "translation", "summarization", "reasoning", "cjk", "chat")
"""Every task :func:`classify` may return; earlier ones win ties."""

SCAN_HEAD = 4000
SCAN_TAIL = 2000
SYSTEM_SCAN = 2000
LONG_INPUT = 2000  # estimated tokens: a summary cue on this much text weighs double
VERY_LONG_INPUT = 8000  # estimated tokens: summarization even without a cue
CJK_SHARE = 0.3
USER = "in the last user message"
SYSTEM = "in the system prompt"
BODY = "in the request"

_CJK = re.compile(r"[\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef\u3000-\u303f]")


@immutable
class _Rule:
    """Fires when one of ``anchors`` is in the lowercased text (a cheap C-speed test) and
    then ``pattern`` matches it (the original text when ``raw``)."""

    task: str
    weight: float
    anchors: tuple[str, ...]
    pattern: re.Pattern[str]
    label: str | None  # None: the matched text, quoted
    raw: bool


def _rule(
    task: str,
    weight: float,
    anchors: str,
    pattern: str,
    label: str | None = None,
    *,
    raw: bool = False,
    flags: int = 0,
) -> _Rule:
    return _Rule(task, weight, tuple(anchors.split("|")), re.compile(pattern, flags), label, raw)


_LANGUAGES = (
    "english|french|german|spanish|chinese|mandarin|cantonese|japanese|korean|russian|italian"
    "|portuguese|arabic|中文|英文|日文"
)
_CODE_WORDS = (
    "bug|bugs|debug|debugging|compile|compiler|refactor|regex|stack trace|stacktrace|segfault"
    "|unit test|unit tests|python|javascript|typescript|golang|rust|java|c++|c#|kotlin|sql"
    "|function|source code|code"
)
_ZH_LANGUAGES = "中文|英文|英语|日文|日语|法语|德语|韩语|俄语"

_RULES: tuple[_Rule, ...] = (
    _rule("coding", 3, "```", r"```", "code fence"),
    _rule(
        "coding",
        3,
        'traceback|file "|panicked at|segmentation fault|error: |exception: |.java:|.js:|.kt:',
        r"Traceback \(most recent call last\)|File \"[^\"\n]+\", line \d+|panicked at"
        r"|Segmentation fault|\bat [\w.$<>]+ ?\([\w./:]+:\d+\)|\b\w+(?:Error|Exception): ",
        "stack trace",
        raw=True,
    ),
    _rule("coding", 2, "def ", r"\bdef \w+\s*\(", "'def'"),
    _rule("coding", 2, "function", r"\bfunction\s*\w*\s*\([^)\n]*\)\s*\{", "'function'"),
    _rule("coding", 2, "class ", r"\bclass \w+\s*[:({]", "'class'"),
    _rule(
        "coding",
        2,
        "import",
        r"^\s*(?:import [\w.]+\s*$|from [\w.]+ import )",
        "import",
        flags=re.M,
    ),
    _rule(
        "coding",
        2,
        "#include|console.log|system.out|println",
        r"#include\s*<|\b(?:console\.log|system\.out\.print\w*|println!?)\(",
    ),
    _rule(
        "coding",
        1,
        "const |let |var |select",
        r"\b(?:const|let|var)\s+\w+\s*=|\bselect\b[^;]{1,200}?\bfrom\b",
        "code",
    ),
    _rule(
        "coding",
        1,
        _CODE_WORDS,
        r"(?<!\w)(?:" + "|".join(re.escape(w) for w in _CODE_WORDS.split("|")) + r")(?!\w)",
    ),
    _rule("coding", 1, "代码|报错|函数|编程|调试|程序", r"代码|报错|函数|编程|调试|程序"),
    _rule("extraction", 2, "extract|提取|抽取", r"\bextract\w*|提取|抽取", "'extract'"),
    _rule("extraction", 1, "json", r"\bjson\b", "'JSON'"),
    _rule(
        "translation",
        3,
        "transl|tradu|übersetz|翻译|翻譯|翻訳|译成|譯成",
        r"\btranslat\w*|\btraduire\b|\btradu[cz]\w*|\bübersetz\w*|翻译|翻譯|翻訳|译成|譯成",
        "'translate'",
    ),
    _rule("translation", 1, _LANGUAGES, r"\b(?:in|into|to) (?:" + _LANGUAGES + r")(?!\w)"),
    _rule("translation", 1, _ZH_LANGUAGES, r"(?:用|成|为|為)(?:" + _ZH_LANGUAGES + ")"),
    _rule(
        "summarization",
        2,
        "summar|tl;dr|tldr|sum |key points|key takeaways|总结|摘要|概括|归纳",
        r"\bsummar(?:y|ies|i[sz]e\w*)\b|\btl;?dr\b|\bsum (?:it |this )?up\b"
        r"|\bkey (?:points|takeaways)\b|总结|摘要|概括|归纳",
    ),
    _rule(
        "reasoning",
        2,
        "prove|proof|step|theorem|证明|一步一步",
        r"\bprove\b|\bproof\b|\bstep[- ]by[- ]step\b|\btheorem\b|证明|一步一步",
    ),
    _rule(
        "reasoning",
        1,
        "solve|equation|integral|derivative|probability|calculate|how many|puzzle|riddle"
        "|求解|方程|概率",
        r"\b(?:solve|equations?|integral|derivative|probability|calculate|how many|puzzle"
        r"|riddle)\b|求解|方程|概率",
    ),
    _rule(
        "reasoning",
        1,
        "+|*|/|^|=|×|÷| - |∫|∑|√|≤|≥",
        r"\d\s*[+*/^×÷=]\s*\(?\d|\d\s+-\s+\d|[∫∑√≤≥]",
        "math expression",
    ),
)


@immutable
class Cue:
    task: str
    weight: float
    label: str
    where: str


@immutable
class TaskGuess:
    task: str
    """The primary task, one of :data:`TASKS`."""
    secondary: tuple[str, ...]
    """Other tasks with cues, heaviest first."""
    reason: str
    """A short human reason, e.g. "code fence and 'def' in the last user message"."""
    cues: tuple[Cue, ...] = ()


def _messages(body: JSONObject) -> list[JSONObject]:
    messages = body.get("messages")
    if not isinstance(messages, list):
        return []
    return [m for m in messages if isinstance(m, dict)]


def _texts(body: JSONObject) -> tuple[str, str]:
    """The last user message's text and the system prompt's (both possibly empty)."""
    messages = _messages(body)
    user = next((m for m in reversed(messages) if m.get("role") == "user"), None)
    if user is None and messages:
        user = messages[-1]
    system = " ".join(
        content_text(m.get("content"))[:SYSTEM_SCAN]
        for m in messages
        if m.get("role") in ("system", "developer")
    )
    return (content_text(user.get("content")) if user else ""), system[:SYSTEM_SCAN]


def user_text(body: JSONObject) -> str:
    """The text of the request's last user message."""
    return _texts(body)[0]


def _window(text: str) -> str:
    if len(text) <= SCAN_HEAD + SCAN_TAIL:
        return text
    return text[:SCAN_HEAD] + "\n" + text[-SCAN_TAIL:]


def _rule_cues(text: str, where: str, scale: float) -> list[Cue]:
    cues = []
    lowered = text.lower()
    for rule in _RULES:
        if not any(anchor in lowered for anchor in rule.anchors):
            continue
        match = rule.pattern.search(text if rule.raw else lowered)
        if match:
            label = rule.label or f"'{match.group(0).strip()[:24].lower()}'"
            cues.append(Cue(rule.task, rule.weight * scale, label, where))
    return cues


def _body_cues(body: JSONObject) -> list[Cue]:
    cues = []
    kind = _json_mode(body)
    if kind:
        cues.append(Cue("extraction", 3, f"response_format {kind}", BODY))
    if body.get("reasoning_effort") is not None:
        cues.append(Cue("reasoning", 3, "reasoning_effort set", BODY))
    return cues


def _size_cues(text: str, scanned: str, summary_cue: bool) -> list[Cue]:
    """CJK share and length of the user text (its scanned part stands for the whole)."""
    cues = []
    visible = len(scanned) - sum(scanned.count(c) for c in " \n\t")
    wide = len(_CJK.findall(scanned))
    share = wide / visible if visible else 0.0
    if wide >= 2 and share >= CJK_SHARE:
        cues.append(Cue("cjk", 1.5, f"{round(share * 100)}% CJK characters", USER))
    tokens = int(len(text) * (share + (1 - share) / 4))
    if tokens > VERY_LONG_INPUT or (summary_cue and tokens > LONG_INPUT):
        cues.append(Cue("summarization", 2, f"about {tokens} tokens of input", USER))
    return cues


def _reason(cues: list[Cue]) -> str:
    top = sorted(cues, key=lambda c: -c.weight)[:2]
    parts: list[str] = []
    for where in dict.fromkeys(c.where for c in top):
        labels = " and ".join(c.label for c in top if c.where == where)
        parts.append(f"{labels} {where}")
    return "; ".join(parts)


def classify(body: JSONObject) -> TaskGuess:
    """Guess the task of a chat request from cheap textual and structural cues."""
    user, system = _texts(body)
    scanned = _window(user)
    cues = _body_cues(body) + _rule_cues(scanned, USER, 1.0)
    if system:
        cues += _rule_cues(system, SYSTEM, 0.5)
    summary_cue = any(c.task == "summarization" for c in cues)
    cues += _size_cues(user, scanned, summary_cue)
    scores: dict[str, float] = {}
    for cue in cues:
        scores[cue.task] = scores.get(cue.task, 0.0) + cue.weight
    ranked = sorted(scores, key=lambda task: (-scores[task], TASKS.index(task)))
    if not ranked or scores[ranked[0]] < 1:
        return TaskGuess("chat", tuple(ranked), "no strong task cues", tuple(cues))
    primary = ranked[0]
    reason = _reason([c for c in cues if c.task == primary])
    return TaskGuess(primary, tuple(ranked[1:]), reason, tuple(cues))


def _json_mode(body: JSONObject) -> str | None:
    response_format = body.get("response_format")
    if isinstance(response_format, dict):
        kind = response_format.get("type")
        if kind in ("json_object", "json_schema"):
            return str(kind)
    return None


def _has_images(body: JSONObject) -> bool:
    for message in _messages(body):
        content = message.get("content")
        if isinstance(content, list) and any(
            isinstance(p, dict) and p.get("type") == "image_url" for p in content
        ):
            return True
    return False


def needs(body: JSONObject) -> frozenset[str]:
    """The capabilities (config ``capabilities`` names) this request relies on."""
    found = set()
    if body.get("tools") or body.get("functions"):
        found.add("tools")
    if _has_images(body):
        found.add("vision")
    if _json_mode(body):
        found.add("json_mode")
    if body.get("reasoning_effort") is not None:
        found.add("reasoning")
    return frozenset(found)
