"""Sends one traffic pattern through the four algorithms and plots what each admitted.

Every request goes to all four limiters at the same instant (one pipeline), so the panels
differ only by algorithm. Limit: 10 per second; bursts of 25 (100 ms long) on top of a steady
6 per second, the first one across the boundary of the fixed window that started at 0. The line
is what reached the backend in the trailing second: only the moving window never exceeds the
limit.
"""

import sys
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import redis  # noqa: E402

LIMIT, WINDOW = 10, "1s"
ALGOS = ["fixed-window", "sliding-window", "moving-window", "gcra"]
DURATION = 11.0
STEADY_RATE = 6.0
BURSTS = [(1.95, 25), (5.5, 25), (8.2, 25)]
BIN = 0.1


def schedule() -> list[float]:
    """Send times (seconds from the start): a steady stream plus bursts a few ms apart."""
    times = [i / STEADY_RATE for i in range(int(DURATION * STEADY_RATE))]
    for at, n in BURSTS:
        times += [at + i * 0.004 for i in range(n)]
    return sorted(times)


def main() -> None:
    port, out = int(sys.argv[1]), sys.argv[2]
    r = redis.Redis(port=port)
    run = int(time.time())
    keys = {a: f"plot:{run}:{a}" for a in ALGOS}
    results: dict[str, list[tuple[float, bool]]] = {a: [] for a in ALGOS}
    start = time.monotonic()
    for t in schedule():
        delay = start + t - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        pipe = r.pipeline(transaction=False)
        for a in ALGOS:
            pipe.execute_command("RL.ALLOW", keys[a], LIMIT, WINDOW, "ALGO", a)
        elapsed = time.monotonic() - start
        for a, reply in zip(ALGOS, pipe.execute()):
            results[a].append((elapsed, reply[0] == 1))

    bins = [i * BIN for i in range(int(DURATION / BIN) + 1)]
    fig, axes = plt.subplots(len(ALGOS), 1, figsize=(9, 9), sharex=True, sharey=True)
    for ax, a in zip(axes, ALGOS):
        allowed = [t for t, ok in results[a] if ok]
        denied = [t for t, ok in results[a] if not ok]
        ax.hist([allowed, denied], bins=bins, stacked=True,
                color=["#2b7bba", "#f2b5b0"], label=["admitted", "denied"])
        # Admitted within the trailing second, sampled every 10 ms.
        grid = [i * 0.01 for i in range(int(DURATION * 100) + 1)]
        trailing = [sum(1 for t in allowed if g - 1.0 < t <= g) for g in grid]
        ax.plot(grid, trailing, color="#1b4f72", lw=1.2, label="admitted in the last 1 s")
        ax.axhline(LIMIT, color="#c0392b", lw=0.8, ls="--", label=f"limit {LIMIT}")
        ax.set_title(
            f"{a}: {len(allowed)} of {len(allowed) + len(denied)} admitted, "
            f"at most {max(trailing)} in any 1 s",
            loc="left",
            fontsize=10,
        )
        ax.set_ylabel(f"per {int(BIN * 1000)} ms")
        for at, _ in BURSTS:
            ax.axvline(at, color="#888", lw=0.6, ls=":")
    axes[0].legend(loc="upper right", fontsize=8, ncol=2)
    axes[-1].set_xlabel("seconds (steady 6/s, bursts of 25 at the dotted lines)")
    fig.suptitle(f"RL.ALLOW key {LIMIT} {WINDOW} ALGO …: the same traffic through each algorithm")
    fig.tight_layout()
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    main()
