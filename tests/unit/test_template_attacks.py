"""Review finding 5: chat templates (untrusted code from model repositories) that
built gigabytes or spun for minutes in the sandbox. Each is refused with a clear
ChatTemplateError before it allocates; an ordinary template still renders."""

from __future__ import annotations

import pytest

from node.text.chat_template import ChatTemplate
from node.text.errors import ChatTemplateError

MESSAGES = [{"role": "user", "content": "hi"}] * 1024
DOUBLE = "{% set ns = namespace(s='a') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}"
FOUR_LOOPS = "".join("{% for " + v + " in messages %}" for v in "abcd") + "x"

ATTACKS = {
    "doubling with ~": DOUBLE + "{% endfor %}{{ ns.s|length }}",
    "doubling in a macro": "{% macro d(s, n) %}{% if n %}{{ d(s ~ s, n - 1) }}{% endif %}"
    "{% endmacro %}{{ d('a', 40) }}",
    "center": "{{ 'a'|center(50000000) }}",
    "percent width": "{{ '%050000000d' % 1 }}",
    "percent star": "{{ '%*d' % (50000000, 1) }}",
    "format filter": "{{ '%050000000d'|format(1) }}",
    "str.format width": "{{ '{:>50000000}'.format('') }}",
    "str.format nested width": "{{ '{:>{}}'.format('', 50000000) }}",
    "ljust": "{{ 'a'.ljust(50000000) }}",
    "indent": "{{ 'a\nb'|indent(50000000) }}",
    "replace doubling": "{% set ns = namespace(s='ab') %}{% for i in range(40) %}"
    "{% set ns.s = ns.s|replace('a', 'aa') %}{% endfor %}",
    "lipsum": "{{ lipsum(n=20000) }}",
    "power tower": "{% set ns = namespace(x=2**60) %}{% for i in range(30) %}"
    "{% set ns.x = ns.x ** 60 %}{% endfor %}{{ ns.x }}",
    "product tower": "{% set ns = namespace(x=2**60) %}{% for i in range(30) %}"
    "{% set ns.x = ns.x * ns.x %}{% endfor %}{{ ns.x }}",
    "nested loops over messages": FOUR_LOOPS + "{% endfor %}" * 4,
}


@pytest.mark.timeout(30)
@pytest.mark.parametrize("source", ATTACKS.values(), ids=ATTACKS.keys())
def test_a_blowup_is_refused(source: str) -> None:
    with pytest.raises(ChatTemplateError, match="chat template failed"):
        ChatTemplate(source).render(MESSAGES)


def test_ordinary_templates_still_render() -> None:
    source = (
        "{% for m in messages %}{{ m.role ~ ': ' ~ m.content }}{{ '%3d' % loop.index }}"
        "{{ '{:>4}'.format(loop.revindex) }}{{ m.role|center(8) }}{% if loop.last %}!{% endif %}"
        "{% endfor %}{{ 'a b'|replace(' ', '-') }}{{ 2 ** 10 }}"
    )
    got = ChatTemplate(source).render(MESSAGES[:2])
    assert got == "user: hi  1   2  user  user: hi  2   1  user  !a-b1024"
