"""Runs `accm bench engine` and Scripts/bench_engine_torch.py alternately and compares their medians.

On a shared virtual machine the speed drifts by tens of percent within minutes, so one run of each is
not a comparison. This alternates the two programs `--rounds` times (Swift, PyTorch, Swift, ...) and
prints, per case, the median time of each and their ratio.

Usage: python Scripts/compare_engine_torch.py [--rounds 3] [--threads 2] [--accm .build/release/accm]
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

# accm case name prefix -> bench_engine_torch.py case name
CASES = {
    "clip-vit-l14-336 forward": "clip-vit-l14-336 forward",
    "gpt2-124m prefill 64": "gpt2-124m prefill 64",
    "gpt2-124m decode": "gpt2-124m decode",
    "llama-7b layer prefill 640": "llama-7b layer prefill 640",
    "llama-7b layer decode": "llama-7b layer decode",
}


def run_json(command, path):
    subprocess.run(command + ["--json", str(path)], check=True, stdout=subprocess.DEVNULL)
    return json.loads(Path(path).read_text())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--accm", default=".build/release/accm")
    args = parser.parse_args()

    swift_times = {k: [] for k in CASES}
    torch_times = {k: [] for k in CASES}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            print(f"round {r + 1}/{args.rounds}", file=sys.stderr)
            for row in run_json([args.accm, "bench", "engine", "--threads", str(args.threads)], Path(tmp, "s.json")):
                for key in CASES:
                    if row["name"].startswith(key):
                        swift_times[key].append(row["seconds"])
            torch_cmd = [sys.executable, str(Path(__file__).with_name("bench_engine_torch.py")),
                         "--threads", str(args.threads),
                         "--cases", "vit,gpt2-prefill,gpt2-decode,llama-prefill,llama-decode"]
            for row in run_json(torch_cmd, Path(tmp, "t.json")):
                for key, torch_name in CASES.items():
                    if row["case"] == torch_name:
                        torch_times[key].append(row["seconds"])

    print(f"{'case':<30} {'accm ms':>10} {'torch ms':>10} {'accm/torch':>11}   (medians of {args.rounds} alternating rounds)")
    for key in CASES:
        s, t = statistics.median(swift_times[key]), statistics.median(torch_times[key])
        print(f"{key:<30} {s * 1e3:>10.1f} {t * 1e3:>10.1f} {s / t:>11.2f}")


if __name__ == "__main__":
    main()
