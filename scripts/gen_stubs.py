"""Writes the field part of the config classes in python/pymlm/_core.pyi from the C++ field tables.

The config classes of pymlm._core (ModelConfig, MaskingOptions, EvalOptions, TrainerConfig,
DataOptions) are made from field tables declared once in C++ (include/mlm/fields.hpp). Their stub
part — an attribute per field, the keyword constructor and the methods every such class has — is
generated from ``Class.fields()`` between two marker lines:

    .venv/bin/python scripts/gen_stubs.py           # rewrite python/pymlm/_core.pyi
    .venv/bin/python scripts/gen_stubs.py --check   # exit 1 if it is out of date (a test does this)

Run it after adding a knob to a table (and rebuilding pymlm).
"""
import argparse
import pathlib
import re
import sys

CLASSES = ("ModelConfig", "MaskingOptions", "EvalOptions", "TrainerConfig", "DataOptions")
BEGIN = "    # -- generated from the C++ field table by scripts/gen_stubs.py; do not edit by hand --"
END = "    # -- end of the generated part --"
STUB = pathlib.Path(__file__).resolve().parent.parent / "python" / "pymlm" / "_core.pyi"


def default_text(value):
    if isinstance(value, str):
        return '"%s"' % value
    if isinstance(value, (bool, int, float)):
        return repr(value)
    if isinstance(value, list):
        return repr(value).replace("'", '"')
    return "..."


def block(cls):
    fields = cls.fields()
    lines = [BEGIN]
    for f in fields:
        lines.append("    %s: %s" % (f["name"], f["type"]))
    lines.append("    def __init__(")
    lines.append("        self,")
    lines.append("        *,")
    for f in fields:
        lines.append("        %s: %s = %s," % (f["name"], f["type"], default_text(f["default"])))
    lines.append("    ) -> None: ...")
    name = cls.__name__
    lines += [
        "    def as_dict(self) -> Dict[str, Any]: ...",
        "    @staticmethod",
        "    def field_names() -> List[str]: ...",
        "    @staticmethod",
        "    def fields() -> List[Dict[str, Any]]: ...",
        "    def __eq__(self, other: object) -> bool: ...",
        "    def __copy__(self) -> %s: ..." % name,
        "    def __deepcopy__(self, memo: dict) -> %s: ..." % name,
        END,
    ]
    return "\n".join(lines)


def generate(text, core):
    for name in CLASSES:
        pattern = re.compile(r"(^class %s\b.*?\n)%s\n.*?%s" % (name, re.escape(BEGIN), re.escape(END)), re.S | re.M)
        if not pattern.search(text):
            raise SystemExit("%s: class %s has no generated part (the marker lines)" % (STUB, name))
        text = pattern.sub(lambda m: m.group(1) + block(getattr(core, name)), text, count=1)
    return text


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if _core.pyi is out of date, change nothing")
    args = parser.parse_args()
    import pymlm._core as core

    text = STUB.read_text()
    new = generate(text, core)
    if args.check:
        if new != text:
            print("%s is out of date with the C++ field tables: run scripts/gen_stubs.py" % STUB)
            return 1
        return 0
    if new != text:
        STUB.write_text(new)
        print("wrote %s" % STUB)
    return 0


if __name__ == "__main__":
    sys.exit(main())
