"""The phrase lint: what seed 002 forbids (§五 客服忌语), rude patterns, polite forms, required elements,
and how a written message to a customer is set: no spaces between Chinese characters, a closing that fits.

Every message is linted after rendering and before it reaches the outbox; a message with findings
is never sent. The checks run on the rendered text, so a value interpolated with spaces around it
("由 客服中心 负责") is caught as the reader would see it. Each finding names its rule (``category``) and the
text it is about (``detail``); ``str(finding)`` is ``rule：text``.

``lint_text(text, customer_facing=..., letter=False)``: any written message (mail, SMS). ``letter=True`` adds
what a letter needs at its end: 「此致／敬礼」 or 「……敬上」, then the signature and the date, nothing more.
``html_text(html)``: an HTML part as its reader sees it (blocks on their own lines, whitespace collapsed the
way a browser does), for linting the HTML variant of a message too.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum
from html import unescape


class Category(StrEnum):
    """The four categories of forbidden phrases in seed 002 §五, plus Kefu's own checks."""

    DIRECT_ADDRESS = "直呼客户"
    INTERROGATION = "反问、质问客户"
    EVASION = "推诿、搪塞客户"
    IMPATIENCE = "厌烦、训斥客户"
    RUDE_PATTERN = "不礼貌语气"
    MISSING_POLITE_FORM = "缺少礼貌用语"
    MISSING_ELEMENT = "缺少必备内容"
    SPACING = "中文字符之间不应有空格"
    CLOSING = "结尾不符合书信格式"


# Seed 002 §五, in simplified Chinese. Matching ignores spaces and treats full- and half-width
# punctuation alike; the question mark is kept where the bare word is harmless ("有什么能帮您").
FORBIDDEN: dict[Category, tuple[str, ...]] = {
    Category.DIRECT_ADDRESS: ("喂", "嘿你"),
    Category.INTERROGATION: (
        "干嘛",
        "什么?",
        "怎样?",
        "你怎么这样",
        "你有完没完",
        "我怎么知道",
        "谁告诉你的",
        "我态度怎样",
        "怎么还不挂机",
        "你到底想怎么样",
        "你问我,我问谁",
        "你有没有搞错",
        "你到底知不知道",
        "请你听清楚好吗",
        "说话这么快给谁听",
        "刚才跟你说过了",
        "怎么还问",
        "别人跟你说的",
        "别人怎么知道",
        "你不是要查吗",
        "你到底要不要查",
        "你要不要听我说",
        "你听不听我说",
        "你是无理取闹",
        "我已经跟你说了很多遍",
        "你还不明白吗",
        "我不是跟你说得很清楚了吗",
        "我不是已经跟你解释很多次了",
    ),
    Category.EVASION: (
        "没这回事",
        "你自己先查清楚",
        "我不清楚",
        "我不知道",
        "我没法查",
        "我也没办法",
        "是你自己说的",
        "不是我说的",
        "我查不到",
        "电话去查",
        "这不关我的事",
        "这不是我的错",
        "我没办法听明白你的意思",
        "恕我愚昧",
        "我们是有时间限制的",
        "不能跟客户讲太久",
        "领导不在",
        "领导没空",
        "领导的电话号码当然不能告诉你",
    ),
    Category.IMPATIENCE: (
        "不可能!",
        "对,没错!",
        "不行就是不行",
        "我就这种态度",
        "有什么了不起",
        "不想用就别用",
        "大声点,我听不清",
        "你小声一点行不行",
        "我态度哪里不好",
    ),
}

# Seed 002 §四 11/12: colloquial particles and harsh punctuation.
RUDE_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("非礼貌性语气助词（嘍、嘛）", re.compile(r"[喽嘍嘛](?:[!?,.。]|$)", re.MULTILINE)),
    ("连续感叹号或问号", re.compile(r"[!?]{2,}")),
    ("训斥用语", re.compile(r"你们?(?:必须|给我|少来|别烦)")),
)

# Seed 002 §三: 请、您好、谢谢、对不起、再见 — a customer message greets, says please or thanks.
GREETINGS = ("您好",)
THANKS = ("谢谢", "感谢", "请")

_PUNCT = str.maketrans({"，": ",", "！": "!", "？": "?", "、": ",", "：": ":", "；": ";"})


def normalise(text: str) -> str:
    """NFKC, full-width punctuation folded to ASCII, whitespace removed."""
    folded = unicodedata.normalize("NFKC", text).translate(_PUNCT)
    return re.sub(r"\s+", "", folded)


_NEEDLES = [(category, phrase, normalise(phrase)) for category, phrases in FORBIDDEN.items() for phrase in phrases]


@dataclass(frozen=True)
class Finding:
    category: Category
    detail: str

    def __str__(self) -> str:
        return f"{self.category.value}：{self.detail}"


# Chinese characters for the spacing rule: ideographs, CJK punctuation (、。「」…) and full-width forms (，！：（）).
_HAN = "\u3001-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff01-\uff60"
_GAP = re.compile(f"(?<=[{_HAN}])[ \t\u00a0\u3000]+(?=[{_HAN}])")
# The one place a letter sets a space between Chinese characters: before the sign-off word of its signature
# ("某某客户服务部 敬上").
SIGN_OFF_WORDS = ("敬上", "谨上")
_SIGN_OFF_AFTER_GAP = re.compile(f"(?:{'|'.join(SIGN_OFF_WORDS)})")

# Closings of a spoken conversation (seed 002 §三's 再见 is for the telephone): out of place in writing.
SPOKEN_CLOSINGS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("再见", re.compile(r"再见(?!面)")),
    ("拜拜", re.compile(r"拜拜")),
    ("回头见", re.compile(r"回头见")),
    ("下次再聊", re.compile(r"下次再聊")),
    ("先这样", re.compile(r"先这样")),
    ("挂了", re.compile(r"挂了")),
    ("bye", re.compile(r"\bbye\b", re.IGNORECASE)),
)
# A letter closes with 此致 / 敬礼 on two lines, or with its signature and 敬上 / 谨上; then the signature and
# the date, nothing after.
_FORMULA = re.compile(r"^[ \t\u3000]*此致[ \t\u3000]*\n[ \t\u3000]*敬礼[!！]?[ \t]*$", re.MULTILINE)
_SIGNED = re.compile(f"^[ \t\u3000]*(?P<name>\\S.*?)?[ \t]*(?:{'|'.join(SIGN_OFF_WORDS)})[!！]?[ \t]*$", re.MULTILINE)
_AFTER_SIGN_OFF = re.compile(f"(?P<word>{'|'.join(SIGN_OFF_WORDS)}|敬礼)(?P<rest>[^\n]*)")
_CIZHI_ALONE = re.compile(r"此致(?![ \t\u3000]*\n[ \t\u3000]*敬礼)")
_DATE = re.compile(r"^\s*\d{4}年\d{1,2}月\d{1,2}日\s*$")


def _excerpt(text: str, start: int, end: int, width: int = 4) -> str:
    """The words around text[start:end] on its line, for a finding a person can locate."""
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", end)
    line_end = len(text) if line_end < 0 else line_end
    return text[max(line_start, start - width) : min(line_end, end + width)]


def spacing_findings(text: str) -> list[Finding]:
    """Spaces between Chinese characters (a value interpolated with spaces around it, a stray space)."""
    gaps = [
        (gap.start(), gap.end())
        for gap in _GAP.finditer(text)
        # "某某客户服务部 敬上" (what may follow 敬上 is the closing rule's business)
        if not _SIGN_OFF_AFTER_GAP.match(text, gap.end())
    ]
    # Gaps a few characters apart on one line are one fault: "由 客服中心 负责" (a value set in spaces).
    runs: list[tuple[int, int]] = []
    for start, end in gaps:
        if runs and start - runs[-1][1] <= 8 and "\n" not in text[runs[-1][1] : start]:
            runs[-1] = (runs[-1][0], end)
        else:
            runs.append((start, end))
    findings: list[Finding] = []
    for start, end in runs:
        finding = Finding(Category.SPACING, f"「{_excerpt(text, start, end)}」")
        if finding not in findings:
            findings.append(finding)
    return findings


def closing_findings(text: str, *, letter: bool) -> list[Finding]:
    """Closings that do not fit a written message: spoken ones, words after the sign-off, 此致 without 敬礼;
    with ``letter``, a letter's end that is not 「此致／敬礼」 or 「……敬上」 followed by signature and date."""
    return _closing_findings(text, normalise(text), letter=letter)


def _closing_findings(text: str, flat: str, *, letter: bool) -> list[Finding]:
    findings: list[Finding] = []
    for word, pattern in SPOKEN_CLOSINGS:
        if pattern.search(flat):
            findings.append(Finding(Category.CLOSING, f"口语结束语「{word}」不适合书面消息"))
    for match in _AFTER_SIGN_OFF.finditer(text):
        rest = match.group("rest").strip(" \t\u3000!！。")
        if rest:
            findings.append(
                Finding(Category.CLOSING, f"「{match.group('word')}」之后不应再有「{match.group('rest').strip()}」")
            )
    if _CIZHI_ALONE.search(text):
        findings.append(Finding(Category.CLOSING, "「此致」之后应另起一行写「敬礼」"))
    if letter:
        findings.extend(_letter_end(text))
    return findings


def _letter_end(text: str) -> list[Finding]:
    ends: list[tuple[int, str | None]] = [(m.end(), None) for m in _FORMULA.finditer(text)]
    ends += [(m.end(), m.group("name")) for m in _SIGNED.finditer(text)]
    if not ends:
        return [Finding(Category.CLOSING, "书信缺少结尾敬语：「此致／敬礼」或「……敬上」")]
    end, signed_by = max(ends, key=lambda e: e[0])
    tail = [line.strip() for line in text[end:].splitlines() if line.strip()]
    findings: list[Finding] = []
    dates = [line for line in tail if _DATE.match(line)]
    names = [line for line in tail if not _DATE.match(line)]
    if not dates:
        findings.append(Finding(Category.CLOSING, "落款缺少日期（如「2026年12月1日」）"))
    if signed_by is None and not names:
        findings.append(Finding(Category.CLOSING, "「此致／敬礼」之后缺少落款署名"))
    allowed_names = 1 if signed_by is None else 0
    for extra in names[allowed_names:]:
        findings.append(Finding(Category.CLOSING, f"落款之后不应再有「{extra}」"))
    return findings


_HTML_SKIPPED = re.compile(r"<(style|script)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_HTML_WHITESPACE = re.compile(r"[ \t\r\n\f]+")
_HTML_BLOCK = re.compile(r"</?(?:p|div|br|li|ul|ol|tr|table|h[1-6]|title|blockquote)\b[^>]*>", re.IGNORECASE)
_HTML_TAG = re.compile(r"<[^>]*>")


def html_text(html: str) -> str:
    """The text of an HTML part as its reader sees it: blocks on their own lines, runs of whitespace inside a
    block shown as one space (as a browser does), the title first."""
    flowing = _HTML_WHITESPACE.sub(" ", _HTML_SKIPPED.sub("", html))
    text = unescape(_HTML_TAG.sub("", _HTML_BLOCK.sub("\n", flowing)))
    lines = (line.strip(" ") for line in text.split("\n"))
    return "\n".join(line for line in lines if line) + "\n"


def lint_text(text: str, *, customer_facing: bool, letter: bool = False) -> list[Finding]:
    """Findings of the phrase lint for one rendered text (subject and body together).

    Every text: forbidden phrases, rude patterns, spaces between Chinese characters. A customer-facing one
    also: the polite forms, closings that fit writing. ``letter``: also the end a letter needs (a mail to a
    customer; not an SMS)."""
    flat = normalise(text)
    findings: list[Finding] = []
    for category, phrase, needle in _NEEDLES:
        if needle in flat:
            findings.append(Finding(category, phrase))
    for label, pattern in RUDE_PATTERNS:
        match = pattern.search(flat)
        if match:
            findings.append(Finding(Category.RUDE_PATTERN, f"{label}「{match.group(0)}」"))
    findings.extend(spacing_findings(text))
    if customer_facing:
        if not any(g in flat for g in GREETINGS):
            findings.append(Finding(Category.MISSING_POLITE_FORM, "缺少问候语「您好」"))
        if not any(t in flat for t in THANKS):
            findings.append(Finding(Category.MISSING_POLITE_FORM, "缺少「请」「谢谢」等礼貌用语"))
        findings.extend(_closing_findings(text, flat, letter=letter))
    return findings


def all_forbidden() -> list[tuple[Category, str]]:
    """Every (category, phrase) pair of seed 002 §五, for tables and tests."""
    return [(category, phrase) for category, phrases in FORBIDDEN.items() for phrase in phrases]
