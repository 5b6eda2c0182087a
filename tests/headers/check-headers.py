#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Compile every public header of ivlink alone: as C11 and as C++17, with
warnings as errors, so that each one includes what it uses and stays usable
from C++.  Usage: check-headers.py CC CXX SRC_INCLUDE BUILD_INCLUDE
(CXX may be "" when no C++ compiler is installed: the C++ pass is then
reported as missing, which fails the test)."""
import os
import subprocess
import sys
import tempfile

cc, cxx, src_inc, build_inc = sys.argv[1:5]
headers = []
for root, _, files in os.walk(os.path.join(src_inc, 'ivlink')):
    for f in files:
        if f.endswith('.h'):
            headers.append(os.path.relpath(os.path.join(root, f), src_inc))
headers.append('ivlink/version.h')  # generated into the build tree
headers.sort()

flags = ['-I', build_inc, '-I', src_inc, '-Wall', '-Wextra', '-Werror', '-pedantic',
         '-fsyntax-only']
passes = [('C11', [cc, '-x', 'c', '-std=c11'] + flags)]
passes.append(('C++17', [cxx, '-x', 'c++', '-std=c++17'] + flags if cxx else None))

failed = 0
with tempfile.TemporaryDirectory() as tmp:
    for h in headers:
        for name, cmd in passes:
            if cmd is None:
                print(f'FAIL {h} as {name}: no C++ compiler')
                failed += 1
                continue
            # Twice: the include guard must make a second inclusion harmless.
            src = os.path.join(tmp, 'one.' + ('c' if name == 'C11' else 'cc'))
            with open(src, 'w') as f:
                f.write(f'#include <{h}>\n#include <{h}>\nint ivl_header_check;\n')
            r = subprocess.run(cmd + [src], capture_output=True, text=True)
            if r.returncode != 0:
                print(f'FAIL {h} as {name}:\n{r.stderr}')
                failed += 1
            else:
                print(f'ok   {h} as {name}')
print(f'{len(headers)} headers, {len(headers) * len(passes) - failed} passes ok, {failed} failed')
sys.exit(1 if failed else 0)
