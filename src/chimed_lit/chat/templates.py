"""Chat templates as Jinja strings, stored in tokenizers so training and inference render alike.

ChiMed-GPT renders a conversation as `[human]:{question}\\n[bot]:{answer}</s>` turn after turn
(Tian et al.); Ziya uses `<human>:` / `<bot>:`. A system message, if any, comes first on its own line.
"""

from __future__ import annotations


def _template(user: str, bot: str) -> str:
    return (
        "{%- for message in messages -%}"
        "{%- if message['role'] == 'system' -%}{{ message['content'] + '\\n' }}"
        f"{{%- elif message['role'] == 'user' -%}}{{{{ '{user}' + message['content'] + '\\n' }}}}"
        f"{{%- elif message['role'] == 'assistant' -%}}{{{{ '{bot}' + message['content'] + eos_token }}}}"
        "{%- endif -%}"
        "{%- endfor -%}"
        f"{{%- if add_generation_prompt -%}}{{{{ '{bot}' }}}}{{%- endif -%}}"
    )


CHIMED_TEMPLATE = _template("[human]:", "[bot]:")
ZIYA_TEMPLATE = _template("<human>:", "<bot>:")

TEMPLATES = {"chimed": CHIMED_TEMPLATE, "ziya": ZIYA_TEMPLATE}
