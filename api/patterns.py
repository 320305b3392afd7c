"""Regular expressions that mean the same to msgspec (Python `re`) and to the OpenAPI document (JSON
Schema, ECMA-262), so a client validating against the document agrees with the server.

The two disagree on `\\s` (Python adds U+001C-U+001F and U+0085, ECMA adds U+FEFF) and on `\\d` (Python
matches every Unicode digit): patterns use `SPACE` inside a class and `[0-9]`.
"""

SPACE = r"\s\x1c-\x1f\x85\ufeff"  # whitespace by either definition; use inside [...]
NON_BLANK = rf"[^{SPACE}]"  # search pattern: at least one character that is not whitespace
EMAIL = rf"^[^@{SPACE}]+@[^@{SPACE}]+\.[^@{SPACE}]+$"
