#!/usr/bin/python3
"""classify.py LOG...: sorts the sanitizer and libFuzzer reports in the logs of reproduced
findings into autodidact's own and libhdf5's. A report belongs to the first stack frame that
is not the sanitizer, libFuzzer, an allocator or libc: a finding whose every stack starts in
libhdf5 (Debian's 1.10.8 parsing a crafted file) is HDF5's; any other is ours. A finding
that does not happen again when its input runs alone (it needed the state earlier inputs
left, such as memory HDF5 leaked) has no report to judge. Prints "OURS HDF5 UNREPRODUCED"
counts, then one line per finding of ours."""
import re
import sys

SKIP = re.compile(r'__sanitizer|__interceptor|__asan|__ubsan|__lsan|fuzzer::|libc\.so|'
                  r'\bin (malloc|calloc|realloc|free|operator new)\b|<unknown module>|'
                  r'string/\.\./sysdeps|libgcc|libstdc\+\+')
FRAME = re.compile(r'^\s*#(\d+) 0x[0-9a-f]+ (.*)$')


def owner_of(log):
    """'ours', 'hdf5' or None (no report) for one reproduced finding."""
    text = open(log, errors='replace').read()
    if 'runtime error:' in text:  # UBSan names a place in instrumented (our) code
        return 'ours'
    if not re.search(r'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)', text):
        return None
    owners, stack_done = [], True
    for line in text.splitlines():
        m = FRAME.match(line)
        if not m:
            continue
        if m.group(1) == '0':
            stack_done = False
        if stack_done or SKIP.search(m.group(2)):
            continue
        owners.append('hdf5' if 'libhdf5' in m.group(2) else 'ours')
        stack_done = True
    if not owners:
        return 'ours'  # a report we could not place counts against us
    return 'ours' if 'ours' in owners else 'hdf5'


def main():
    ours, hdf5, none, lines = 0, 0, 0, []
    for log in sys.argv[1:]:
        who = owner_of(log)
        if who == 'ours':
            ours += 1
            lines.append(log)
        elif who == 'hdf5':
            hdf5 += 1
        else:
            none += 1
    print(ours, hdf5, none)
    for l in lines:
        print(l)


if __name__ == '__main__':
    main()
