"""Driver for the kill-and-resume test: one MBE through a one-worker executor into a given cache."""

import json
import sys

from qcmb_parsl import ManyBodyComputer, ParslExecutor

if __name__ == "__main__":
    mbin_path, cache_dir = sys.argv[1], sys.argv[2]
    with open(mbin_path) as handle:
        mbin = json.load(handle)
    with ParslExecutor("threads", max_workers=1, cache_dir=cache_dir, progress=False) as executor:
        result = ManyBodyComputer.from_manybodyinput(mbin, executor=executor)
    print(result.return_result)
