"""Synthetic customers: CSV files for `privacy-hub import`, and seeding over the API.

Customer i of a set with prefix P has the email P<i>@example.com, so the lookup script
can pick seeded emails at random without a list (bench/scripts/lookup.lua).
"""

from __future__ import annotations

import csv
import http.client
import json
import random
import threading
from pathlib import Path
from typing import Any

FIRST = ("Ada", "Mila", "Noah", "Sofia", "Liam", "Emma", "Lukas", "Hanna", "Jonas", "Lea",
         "Élodie", "Zoë", "Mateusz", "Søren", "Aurélien", "Ana")
LAST = ("Lovelace", "Weber", "Martin", "Rossi", "O'Connor", "Müller", "Schmidt", "Dubois",
        "Nowak", "García", "Jensen", "Novák", "Bianchi", "Fischer", "Keller", "Wagner")
CITIES = (("Berlin", "DE", "10115"), ("Paris", "FR", "75002"), ("Milano", "IT", "20121"),
          ("Dublin", "IE", "D02"), ("Wien", "AT", "1010"), ("Madrid", "ES", "28001"))
COLUMNS = ("external_id", "email", "first_name", "last_name", "phone", "birth_date", "locale",
           "address_line1", "address_postal_code", "address_city", "address_country",
           "attr.loyalty_tier")


def customer(i: int, prefix: str, rng: random.Random) -> dict[str, str]:
    city, country, postal = rng.choice(CITIES)
    return {
        "external_id": f"{prefix}-{i}",
        "email": f"{prefix}{i}@example.com",
        "first_name": rng.choice(FIRST),
        "last_name": rng.choice(LAST),
        "phone": f"+49151{i % 10**8:08d}",
        "birth_date": f"{rng.randint(1940, 2005)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
        "locale": rng.choice(("de-DE", "fr-FR", "it-IT", "en-IE", "de-AT", "es-ES")),
        "address_line1": f"Hauptstraße {rng.randint(1, 200)}",
        "address_postal_code": postal,
        "address_city": city,
        "address_country": country,
        "attr.loyalty_tier": rng.choice(("", "silver", "gold")),
    }


def write_csv(path: Path, count: int, prefix: str, seed: int = 1) -> Path:
    """A UTF-8 CSV of ``count`` customers in the import format (README, "Importing")."""
    rng = random.Random(seed)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        for i in range(count):
            writer.writerow(customer(i, prefix, rng))
    return path


def api_body(row: dict[str, str]) -> dict[str, Any]:
    """The same customer as a `POST /api/v1/customers` body."""
    body: dict[str, Any] = {k: row[k] for k in ("external_id", "email", "first_name",
                                                "last_name", "phone", "birth_date", "locale")}
    body["address"] = {"line1": row["address_line1"], "postal_code": row["address_postal_code"],
                       "city": row["address_city"], "country": row["address_country"]}
    if row["attr.loyalty_tier"]:
        body["attributes"] = {"loyalty_tier": row["attr.loyalty_tier"]}
    return body


def seed_via_api(port: int, api_key: str, count: int, prefix: str, *,
                 connections: int = 8, seed: int = 1) -> int:
    """Create ``count`` customers with keep-alive connections; returns how many were new."""
    rng = random.Random(seed)
    rows = [customer(i, prefix, rng) for i in range(count)]
    created = 0
    failures: list[str] = []
    lock = threading.Lock()
    headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}

    def work(part: list[dict[str, str]]) -> None:
        nonlocal created
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        new = 0
        try:
            for row in part:
                conn.request("POST", "/api/v1/customers", body=json.dumps(api_body(row)),
                             headers=headers)
                resp = conn.getresponse()
                resp.read()
                if resp.status == 201:
                    new += 1
                elif resp.status != 200:
                    with lock:
                        failures.append(str(resp.status))
        finally:
            conn.close()
            with lock:
                created += new

    parts = [rows[i::connections] for i in range(connections)]
    threads = [threading.Thread(target=work, args=(p,)) for p in parts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        raise RuntimeError(f"seeding failed for {len(failures)} customers: "
                           f"statuses {sorted(set(failures))}")
    return created
