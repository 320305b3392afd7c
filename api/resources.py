"""Where the SQL sources live: packaged into the wheel, or beside `api/` in a checkout."""

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
_PACKAGED = _PACKAGE / "_resources"
_ROOT = _PACKAGED if _PACKAGED.is_dir() else _PACKAGE.parent

SQL_DIR = _ROOT / "sql"
MIGRATIONS_DIR = _ROOT / "migrations"
