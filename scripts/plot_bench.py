"""Draws what scripts/bench measured (its JSON) as one picture: bytes per key and throughput per
algorithm, each next to the peers it replaces (limits' Lua scripts, INCR + EXPIRE, SET PX,
redis-cell when the run had it).

    python scripts/plot_bench.py RESULTS.json OUT.png
"""

import json
import re
import sys
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

MODULE, PEER = "#2b7bba", "#b0b0b0"
# Throughput rows drawn (scripts/bench row names), with the label shown.
THROUGHPUT = [
    ("sliding", "RL.ALLOW sliding-window"),
    ("fixed", "RL.ALLOW fixed-window"),
    ("gcra", "RL.ALLOW gcra"),
    ("moving", "RL.ALLOW moving-window"),
    ("peek", "RL.PEEK"),
    ("inspect", "RL.INSPECT"),
    ("limits_fixed", "limits' fixed window (Lua)"),
    ("limits_sliding", "limits' sliding window counter (Lua)"),
    ("limits_moving", "limits' moving window (Lua)"),
    ("cell", "redis-cell CL.THROTTLE"),
]
PEERS = ("limits", "cell", "INCRBY", "SET", "redis-cell")


def is_peer(label: str) -> bool:
    return any(label.startswith(p) or p in label for p in PEERS)


def memory_panel(ax: Any, memory: list[dict[str, Any]]) -> None:
    labels = [r["row"] for r in memory[0]["rows"]]
    for t in memory[1:]:
        labels += [r["row"] for r in t["rows"] if r["row"] not in labels]
    height = 0.8 / len(memory)
    for i, table in enumerate(memory):
        by_row = {r["row"]: r for r in table["rows"]}
        ys, xs, colors = [], [], []
        for j, label in enumerate(labels):
            if label in by_row:
                ys.append(j + i * height)
                xs.append(by_row[label]["bytes_per_key"])
                colors.append(PEER if is_peer(label) else MODULE)
        bars = ax.barh(ys, xs, height=height * 0.95, color=colors,
                       alpha=1.0 if i == 0 else 0.55, label=table["server"])
        for bar, x in zip(bars, xs, strict=True):
            ax.text(x + 2, bar.get_y() + bar.get_height() / 2, f"{x:.0f} ({table['server']})",
                    va="center", fontsize=7)
    ax.set_yticks([j + 0.4 - height / 2 for j in range(len(labels))], labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("bytes per key (used_memory delta per key, TTL included)")
    ax.set_title("memory: blue = this module, grey = what it replaces", loc="left", fontsize=10)
    ax.set_xlim(0, max(r["bytes_per_key"] for t in memory for r in t["rows"]) * 1.35)


def throughput_panel(ax: Any, table: list[dict[str, Any]]) -> None:
    setups = ["existing keys, -P 16", "fresh keys, -P 16"]
    rows = [(name, label) for name, label in THROUGHPUT
            if any(e["row"] == name and e["setup"] in setups for e in table)]
    height = 0.4
    right = 1.0
    for i, setup in enumerate(setups):
        by_row = {e["row"]: e for e in table if e["setup"] == setup}
        for j, (name, _) in enumerate(rows):
            e = by_row.get(name)
            if not e or e.get("ops_ratio") is None:
                continue
            color = PEER if name.startswith(("limits", "cell")) else MODULE
            y = j + i * height
            lo, hi = e["ops_ratio_range"]
            ax.barh(y, e["ops_ratio"], height=height * 0.95, color=color,
                    alpha=1.0 if i == 0 else 0.55)
            ax.errorbar(e["ops_ratio"], y, xerr=[[e["ops_ratio"] - lo], [hi - e["ops_ratio"]]],
                        color="#333", lw=0.8, capsize=2)
            label = f"{e['ops_ratio']:.2f} ({e['ops']:,.0f}/s, {setup.split(',')[0]})"
            if e.get("instructions_ratio"):
                by_instr = 1 / e["instructions_ratio"]
                ax.plot(by_instr, y, marker="D", color="#c0392b", ms=4)
                label += f"; ◆ {by_instr:.2f}"
                hi = max(hi, by_instr)
            ax.text(hi + 0.02, y, label, va="center", fontsize=7)
            right = max(right, hi)
    ax.set_yticks([j + height / 2 for j in range(len(rows))], [lab for _, lab in rows],
                  fontsize=8)
    ax.invert_yaxis()
    ax.axvline(1.0, color="#888", lw=0.8, ls="--")
    ax.set_xlim(0, right + 0.75)
    ax.set_xlabel("÷ INCR on the same keys in the same round\nbar: throughput, median and range "
                  "over rounds; ◆: by instructions per request")
    ax.set_title("redis-benchmark -P 16 -c 50: solid = existing keys, light = fresh keys",
                 loc="left", fontsize=10)


def main() -> None:
    results, out = sys.argv[1], sys.argv[2]
    with open(results) as f:
        data = json.load(f)
    panels = [p for p in ("memory", "throughput") if data.get(p)]
    if not panels:
        sys.exit(f"{results} has neither memory nor throughput figures")
    fig, axes = plt.subplots(1, len(panels), figsize=(8 * len(panels), 6.5), squeeze=False)
    for ax, panel in zip(axes[0], panels, strict=True):
        if panel == "memory":
            memory_panel(ax, data["memory"])
        else:
            throughput_panel(ax, data["throughput"])
    meta = data["meta"]
    command = re.sub(r"=/\S*/", "=…/", meta["command"])
    fig.suptitle(f"scripts/bench, {meta['date']}: {meta['server']}, {meta['cores']} cores "
                 f"(load average {meta['load_start'][0]:.1f}–{meta['load_end'][0]:.1f})\n"
                 f"{command}", fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=100)


if __name__ == "__main__":
    main()
