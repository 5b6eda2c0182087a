#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Every public function documents what it returns (docs/api.md, "Errors,
ownership, thread safety").

The rule, for each header under include/ivlink/ (proto/ and uapi/ included):
 - A function's comment is the comment block right above its declaration,
   or, for a group of declarations written on consecutive lines with no
   blank line between them, the comment block right above the group.
 - A function that returns int or ssize_t (a count or a negative errno)
   must have a comment that says "Errors:" or "Returns" (what a success
   returns, and which -errno values come back and why).
 - Exempt: functions returning void, bool, a pointer, an unsigned or
   fixed-width unsigned integer, size_t or an enum (getters and verbs that
   cannot fail report through their value, not through -errno), and static
   inline helpers of the proto/ headers (compile-time arithmetic).
 - Every header that declares functions says "Thread safety" somewhere (a
   header-level statement covering all its functions, with exceptions
   named, or one per function).
Prints each violation and a summary line; exits 1 when there is any.
Usage: check-docs.py INCLUDE_DIR [--list]"""
import os
import re
import sys

ERRNO_TYPES = {'int', 'ssize_t'}


def functions(path):
    """Yield (name, return type, comment text or '') per declared function."""
    lines = open(path).read().split('\n')
    # Classify each line: 'c' inside/at a comment, 'b' blank, 'p' preprocessor,
    # 'd' code.  Comments are tracked by hand so that each block keeps its text.
    kind, text_of = [], {}
    in_c, start, buf = False, 0, []
    for i, ln in enumerate(lines):
        s = ln.strip()
        if in_c:
            kind.append('c')
            buf.append(ln)
            if '*/' in ln:
                in_c = False
                text_of[i] = '\n'.join(buf)
            continue
        if not s:
            kind.append('b')
        elif s.startswith('#'):
            kind.append('p')
        elif s.startswith('/*'):
            kind.append('c')
            buf = [ln]
            if '*/' not in s:
                in_c = True
            else:
                text_of[i] = ln
                # A comment followed by code on the same line is code.
                if not s.endswith('*/'):
                    kind[-1] = 'd'
        else:
            kind.append('d')
    # Code with comments removed, positions kept, for the declarations.
    code = []
    for i, ln in enumerate(lines):
        code.append(re.sub(r'/\*.*?(\*/|$)', '', ln) if kind[i] == 'd' else '')
    depth = 0
    i = 0
    while i < len(lines):
        ln = code[i]
        if depth == 0 and kind[i] == 'd':
            # Join a declaration spread over several lines.
            stmt, j = ln, i
            while ';' not in stmt and '{' not in stmt and j + 1 < len(lines):
                j += 1
                stmt += ' ' + code[j]
            m = re.match(r'\s*([A-Za-z_][^;{}()]*?)\b(ivl_[a-z0-9_]+)\s*\(', stmt)
            if m and not m.group(1).startswith('typedef') and '(*' not in m.group(1):
                ret = m.group(1).strip()
                # Walk up over the group to the comment block above it.
                k = i - 1
                while k >= 0 and kind[k] == 'd':
                    k -= 1
                comment = ''
                if k >= 0 and kind[k] == 'c':
                    end = k
                    while k >= 0 and kind[k] == 'c' and k not in text_of:
                        k -= 1
                    comment = text_of.get(end, '')
                yield m.group(2), ret, comment, i + 1
        # extern "C" { ... } of C++ is not a scope for this purpose.
        prev = lines[i - 1].strip() if i else ''
        if not (ln.strip() == 'extern "C" {' or (ln.strip() == '}' and prev == '#ifdef __cplusplus')):
            depth += ln.count('{') - ln.count('}')
        i += 1


def main():
    inc = sys.argv[1]
    listing = '--list' in sys.argv
    total = errno_fns = documented = 0
    bad = []
    for root, _, files in sorted(os.walk(os.path.join(inc, 'ivlink'))):
        for f in sorted(files):
            if not f.endswith(('.h', '.h.in')):
                continue
            path = os.path.join(root, f)
            rel = os.path.relpath(path, inc)
            src = open(path).read()
            fns = [fn for fn in functions(path) if not fn[1].startswith('static')]
            if fns and 'Thread safety' not in src and 'thread' not in src:
                bad.append(f'{rel}: declares functions but says nothing about thread safety')
            for name, ret, comment, line in fns:
                total += 1
                base = re.sub(r'\b(extern|const|struct|enum)\b', '', ret).strip()
                if base not in ERRNO_TYPES:
                    continue
                errno_fns += 1
                ok = 'Errors:' in comment or 'Returns' in comment
                if ok:
                    documented += 1
                else:
                    bad.append(f'{rel}:{line}: {name}() returns {ret} but its comment '
                               f'has no "Errors:" or "Returns"')
                if listing:
                    print(f'{"ok " if ok else "-- "}{rel}:{line} {name}')
    for b in bad:
        print(b)
    print(f'{total} public functions, {errno_fns} return int/ssize_t, {documented} of them '
          f'document Errors/Returns; {len(bad)} problems')
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
