#!/usr/bin/env python3
"""Filter of tests/upgrade/assemble.sh: reads the output of functions.sh on
stdin and writes it to stdout with every function that has an SQL-standard
body (BEGIN ATOMIC ... END, or RETURN expr) as the install script's parts
(the files given as arguments) write it.  pg_get_functiondef prints such a
body deparsed, with column aliases the source does not have ("'x'::text AS
text"), so that a function created from it would differ from a fresh
install's in its stored body; the source text creates the same one.

A part's definition is its CREATE [OR REPLACE] FUNCTION line and the
indented lines after it, up to the next line that starts in column 0."""
import re
import sys

CREATE = re.compile(r"^CREATE (?:OR REPLACE )?FUNCTION ([a-z_0-9]+\.[a-z_0-9]+)\(", re.I)


def sources(paths):
    out = {}
    for path in paths:
        with open(path, encoding="utf-8") as f:
            lines = f.read().split("\n")
        i = 0
        while i < len(lines):
            m = CREATE.match(lines[i])
            if not m:
                i += 1
                continue
            j = i + 1
            while j < len(lines) and (lines[j] == "" or lines[j][0] in " \t"):
                j += 1
            body = lines[i:j]
            while body and body[-1].strip() == "":
                body.pop()
            name = m.group(1).lower()
            if name in out:
                sys.exit("%s: %s is defined twice in the parts" % (path, name))
            out[name] = "\n".join(body)
            i = j
    return out


def main():
    src = sources(sys.argv[1:])
    text = sys.stdin.read()
    # functions.sh prints each definition as pg_get_functiondef's text and a
    # line holding only ";"
    blocks = re.split(r"(?m)^(CREATE OR REPLACE FUNCTION [^\n]*\n(?:.*\n)*?;\n)", text)
    res = []
    for b in blocks:
        m = CREATE.match(b)
        if m and re.search(r"(?m)^(BEGIN ATOMIC$|RETURN )", b) and "$function$" not in b:
            name = m.group(1).lower()
            if name not in src:
                sys.exit("no definition of %s in the parts" % name)
            s = src[name]
            if not s.rstrip().endswith(";"):
                sys.exit("the parts' definition of %s does not end with ';'" % name)
            b = re.sub(r"^CREATE (?:OR REPLACE )?FUNCTION", "CREATE OR REPLACE FUNCTION", s, flags=re.I) + "\n"
        res.append(b)
    sys.stdout.write("".join(res))


main()
