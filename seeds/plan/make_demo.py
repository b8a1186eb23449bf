"""Regenerate the demo plan files in this folder (deterministic; run from the repo root).

    python seeds/plan/make_demo.py

A 400 m cross-belt loop with 300 destination chutes (both sides), 4 overflow and 3 reject
chutes; 280 destinations (German-style postal-code regions and a few route ids), the
busiest with alternates; a second-wave plan that merges quiet destinations.
"""
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
rng = np.random.default_rng(20241126)

n_dest_chutes = 300
chutes = []
for i in range(n_dest_chutes):
    side = "left" if i % 2 == 0 else "right"
    pos = 20.0 + (i // 2) * 2.4
    chutes.append((f"C{i + 1:03d}", "destination", int(rng.choice([30, 40, 40, 50, 60])), pos, side))
for i, pos in enumerate((382.0, 384.4, 386.8, 389.2)):
    chutes.append((f"OV{i + 1}", "overflow", 80, pos, "left" if i % 2 == 0 else "right"))
for i, pos in enumerate((392.0, 394.4, 396.8)):
    chutes.append((f"R{i + 1}", "reject", 200, pos, "left" if i % 2 == 0 else "right"))

dests = [f"{z:05d}" for z in sorted(rng.choice(np.arange(1000, 99999), 270, replace=False))]
dests += [f"RT-{k:02d}" for k in range(1, 11)]
# chutes per destination: the first 25 (busiest) get 2-3, others 1
order = list(range(n_dest_chutes))
rows, k = [], 0
for j, d in enumerate(dests):
    n = 3 if j < 5 else 2 if j < 25 else 1
    if k + n > n_dest_chutes:
        k = 0
    rows.append((d, [chutes[order[k + m]][0] for m in range(n)]))
    k += n

with open(HERE / "demo_plan.csv", "w") as f:
    f.write("destination,chutes\n")
    for d, cs in rows:
        f.write(f"{d},{';'.join(cs)}\n")
# wave 2: the evening plan sends every second quiet destination to its neighbour's chute
with open(HERE / "demo_plan_wave2.csv", "w") as f:
    f.write("destination,chutes\n")
    for j, (d, cs) in enumerate(rows):
        if j >= 25 and j % 2 == 1:
            cs = rows[j - 1][1][:1] + cs
        f.write(f"{d},{';'.join(cs)}\n")

with open(HERE / "demo_chutes.toml", "w") as f:
    f.write('# Demo sorter: 400 m loop, 300 destination chutes, 4 overflow, 3 reject.\n')
    f.write('[plan]\nname = "wave-1"\nstrategy = "least_loaded"\nmax_recirculation = 3\n')
    f.write('overflow = ["OV1", "OV2", "OV3", "OV4"]\n\n[reject]\n')
    f.write('no_read = "R1"\nunknown_destination = "R1"\nmax_recirculation = "R2"\n'
            'no_chute_available = "R2"\nnot_sortable = "R3"\nlate = "R1"\n')
    for cid, kind, cap, pos, side in chutes:
        f.write(f'\n[[chute]]\nid = "{cid}"\nkind = "{kind}"\ncapacity = {cap}\n'
                f'position = {pos:.1f}\nside = "{side}"\n')

# a short event stream: 2,000 scans with chute events and a plan switch
weights = 1.0 / np.arange(1, len(dests) + 1) ** 0.8
weights /= weights.sum()
lines = ["t,event,parcel,destination,recirculation,sortable,chute,plan"]
t = 0.0
fills = {}
reopen = []          # (time, chute) of blocked chutes to reopen, emitted in time order
for p in range(2000):
    t += float(rng.exponential(0.25))
    while reopen and reopen[0][0] <= t:
        rt, rc = reopen.pop(0)
        lines.append(f"{rt:.2f},open,,,,,{rc},")
    if p == 1000:
        lines.append(f"{t:.2f},switch_plan,,,,,,demo_plan_wave2.csv")
    u = rng.random()
    if u < 0.015:
        dest = ""
    elif u < 0.02:
        dest = "99999X"
    else:
        dest = dests[rng.choice(len(dests), p=weights)]
    rec = int(rng.random() < 0.04)
    sortable = 0 if rng.random() < 0.005 else 1
    lines.append(f"{t:.2f},scan,P{p:06d},{dest},{rec},{sortable},,")
    if p % 97 == 0:
        c = chutes[int(rng.integers(0, n_dest_chutes))][0]
        lines.append(f"{t:.2f},blocked,,,,,{c},")
        reopen.append((t + 30.0, c))
        reopen.sort()
    if p % 5 == 0:
        c = rows[int(rng.integers(0, 40))][1][0]
        lines.append(f"{t:.2f},discharged,,,,,{c},")
        fills[c] = fills.get(c, 0) + 1
        if fills[c] % 8 == 0:
            lines.append(f"{t:.2f},container_changed,,,,,{c},")
with open(HERE / "demo_events.csv", "w") as f:
    f.write("\n".join(lines) + "\n")
print("wrote", len(rows), "destinations,", len(chutes), "chutes,", len(lines) - 1, "events")
