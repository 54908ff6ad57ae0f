"""Write a small CSV of real-looking sequences: hourly readings of weather stations.

    python examples/make_csv.py                  # examples/data/sequences.csv
    python examples/make_csv.py my/weather.csv   # anywhere else

Long format, one row per reading: ``station`` (the sequence), ``hour`` (the time), and two
features in their own units, ``temperature`` (°C: a daily cycle around the station's mean, with
persistent weather noise) and ``pressure`` (hPa: a slow random walk around 1013). 48 stations
of 8 to 16 readings, so the sequences have different lengths. Made from a seed: the same file
every time.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np

STATIONS, SEED = 48, 0


def readings(rng: np.random.Generator, station: int) -> list[tuple]:
    """The rows of one station: a random start hour and 8 to 16 hourly readings."""
    mean, start = rng.normal(12.0, 4.0), int(rng.integers(0, 24))
    pressure, weather = rng.normal(1013.0, 6.0), 0.0
    rows = []
    for hour in range(start, start + int(rng.integers(8, 17))):
        weather = 0.8 * weather + rng.normal(0.0, 0.6)  # persistent deviations (AR(1))
        temperature = mean + 5.0 * np.sin(2 * np.pi * (hour - 9) / 24) + weather
        pressure += rng.normal(0.0, 0.4)
        rows.append((f"s{station:02d}", hour, round(temperature, 2), round(pressure, 1)))
    return rows


def main(path: str = "examples/data/sequences.csv") -> Path:
    rng = np.random.default_rng(SEED)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["station", "hour", "temperature", "pressure"])
        for station in range(STATIONS):
            writer.writerows(readings(rng, station))
    return out


if __name__ == "__main__":
    print(f"wrote {main(*sys.argv[1:2])}")
