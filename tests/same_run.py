#!/usr/bin/python3
"""same_run.py [--train-rtol R] A.h5 B.h5: exits 0 when two run files hold the same numbers
bit for bit: every dataset (summary columns, each round's prompts, candidates, scores,
selections, training curve, evaluation) and rounds_complete. Timings and throughput differ
between any two runs and are skipped; the stored configs are compared without run_file, since
their run_file keys are the one intended difference. With --train-rtol, the numbers that
come out of training arithmetic (training loss and gradient norm, evaluation loss) need only
agree to relative tolerance R, as between runs on different numbers of MPI ranks, whose
gradient sums add in another order; everything else is still compared bit for bit. Prints
what differs. Used by kill_resume.sh, full_disk.sh and mpi_run.sh."""
import json
import re
import sys

import h5py
import numpy as np

SKIP = re.compile(r'time|per_s|seconds')
TRAINED = re.compile(r'(^|/)(train/loss|train/grad_norm|eval/loss|train_loss|eval_loss)$')


def datasets(f):
    names = []
    f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
    return sorted(n for n in names if not SKIP.search(n))


def value(f, name):
    v = f[name][()]
    if isinstance(v, bytes):
        v = v.decode()
    if name == 'config':  # the resolved config, JSON
        v = json.loads(v)
        v.pop('run_file', None)
    if name == 'config_original':  # the text as given, then the --set lines
        v = re.sub(r'(?m)^--set run_file=.*$', '', v)
    return v


def same(x, y, rtol=None):
    if isinstance(x, np.ndarray) and isinstance(y, np.ndarray):
        if x.shape != y.shape or x.dtype != y.dtype:
            return False
        if rtol is not None:
            return bool(np.allclose(x, y, rtol=rtol, atol=0.0, equal_nan=True))
        if x.dtype.kind == 'O':
            return list(x.ravel()) == list(y.ravel())
        return x.tobytes() == y.tobytes()  # floats compared by their bits
    return x == y


def main():
    args, rtol = sys.argv[1:], None
    if len(args) == 4 and args[0] == '--train-rtol':
        rtol, args = float(args[1]), args[2:]
    if len(args) != 2:
        print('usage: same_run.py [--train-rtol R] A.h5 B.h5')
        return 2
    pa, pb = args
    a, b = h5py.File(pa, 'r'), h5py.File(pb, 'r')
    na, nb = datasets(a), datasets(b)
    if na != nb:
        print('same_run: datasets differ:', sorted(set(na) ^ set(nb))[:10])
        return 1
    bad = [n for n in na
           if not same(value(a, n), value(b, n), rtol if rtol is not None and TRAINED.search(n) else None)]
    if a.attrs['rounds_complete'] != b.attrs['rounds_complete']:
        bad.append('rounds_complete')
    if bad:
        print('same_run: %s and %s differ in' % (pa, pb), bad[:10])
        return 1
    if rtol is None:
        print('same_run: %d datasets of %d rounds equal bit for bit' % (len(na), a.attrs['rounds_complete']))
    else:
        print('same_run: %d datasets of %d rounds equal bit for bit, the training losses to relative %g'
              % (len(na), a.attrs['rounds_complete'], rtol))
    return 0


if __name__ == '__main__':
    sys.exit(main())
