#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The ABI is a list: check that src/libivlink.sym, the public headers and
the built library agree.
 - every name in libivlink.sym is exported by the library, and nothing else;
 - every function the public headers declare is in libivlink.sym;
 - every name in libivlink.sym is declared by a public header.
Usage: check-abi.py NM LIBIVLINK_SO SYMFILE INCLUDE_DIR"""
import importlib.util
import os
import re
import subprocess
import sys

nm, lib, symfile, inc = sys.argv[1:5]
text = re.sub(r'/\*.*?\*/', '', open(symfile).read(), flags=re.S)
listed = set(re.findall(r'\b(ivl_[a-z0-9_]+)\s*;', text))

out = subprocess.run([nm, '-D', '--defined-only', lib], capture_output=True, text=True,
                     check=True).stdout
exported = set()
for line in out.splitlines():
    parts = line.split()
    if len(parts) == 3 and parts[1] in 'TDBRVW':
        exported.add(parts[2].split('@')[0])
exported = {s for s in exported if not s.startswith('_')}

# The declarations, as the documentation check reads them (one parser).
spec = importlib.util.spec_from_file_location(
    'check_docs', os.path.join(os.path.dirname(os.path.abspath(__file__)), 'check-docs.py'))
check_docs = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check_docs)
declared = set()
for root, _, files in os.walk(os.path.join(inc, 'ivlink')):
    for f in files:
        if f.endswith(('.h', '.h.in')) and 'uapi' not in root:
            # static inline functions are not exported.
            declared.update(fn[0] for fn in check_docs.functions(os.path.join(root, f))
                            if not fn[1].startswith('static'))

bad = 0
for name, got, want in (('exported but not listed', exported - listed, None),
                        ('listed but not exported', listed - exported, None),
                        ('declared in a header but not listed', declared - listed, None),
                        ('listed but declared in no header', listed - declared, None)):
    for s in sorted(got):
        print(f'{name}: {s}')
        bad += 1
print(f'{len(listed)} symbols listed, {len(exported)} exported, {len(declared)} declared; '
      f'{bad} problems')
sys.exit(1 if bad else 0)
