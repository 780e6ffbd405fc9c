"""Reference outputs of the Python `lifetimes` package for userql's LTV tests.

Writes into tests/data/ (next to this folder):

- cdnow_summary.csv: the CDNOW sample summary of Fader, Hardie & Lee (2005) as
  `lifetimes` ships it (2357 customers, time in weeks, monetary_value = mean
  repeat transaction value): customer_id,frequency,recency,T,monetary_value
- cdnow_transactions.csv: the raw CDNOW sample transactions `lifetimes` ships
  (CDNOW_sample.txt), as customer_id,date,amount (customer_id is the sample's
  own 1..2357 index, the ID of cdnow_summary.csv)
- cdnow_transactions_summary.csv: `summary_data_from_transaction_data` of those
  transactions for freq 'D', 'W', 'M' and two observation ends
- cdnow_lifetimes_params.csv: fitted BetaGeoFitter and GammaGammaFitter
  parameters, on the published summary and on summaries of the transactions
  (the data sets of FITS below)
- cdnow_lifetimes_reference.csv: per customer and data set, P(alive), the
  conditional expected purchases over a horizon, the Gamma-Gamma conditional
  expected average profit and customer_lifetime_value (12 months, 1 % monthly)

Run with lifetimes==0.11.3 and libraries of its time (it predates pandas 2
and numpy 2); the files were made with these versions:

    python -m venv venv
    venv/bin/pip install lifetimes==0.11.3 numpy==1.26.4 pandas==1.5.3 \
        scipy==1.11.4 autograd==1.6.2
    venv/bin/python tests/reference/ltv_reference.py
"""

import contextlib
import io
import os
import warnings

import pandas as pd
from lifetimes import BetaGeoFitter, GammaGammaFitter
from lifetimes.datasets import load_cdnow_summary_data_with_monetary_value, load_dataset
from lifetimes.utils import ConvergenceError, summary_data_from_transaction_data

warnings.simplefilter("ignore")

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data")
FLOAT = "%.15g"

# Observation ends: the paper's calibration end and the end of the data. Both
# are Tuesdays, so the week and month units floor them to a period start.
AS_OF = ["1997-09-30", "1998-06-30"]
UNITS = [("D", "day"), ("W", "week"), ("M", "month")]
FREQ = dict((unit, freq) for freq, unit in UNITS)
# Data sets fitted and predicted on: (name, unit, as_of, horizon of the
# expected purchases in that unit: the paper's 39-week holdout period). The
# published summary is in weeks. Monthly data to 1997-09-30 (nine months) do
# not determine the dropout process: lifetimes' BetaGeoFitter raises
# ConvergenceError there (a -> 0, b -> infinity), which NOT_CONVERGED checks.
FITS = [
    ("published", "week", None, 39.0),
    ("day@1997-09-30", "day", AS_OF[0], 273.0),
    ("week@1997-09-30", "week", AS_OF[0], 39.0),
    ("month@1998-06-30", "month", AS_OF[1], 9.0),
]
NOT_CONVERGED = [("month", AS_OF[0])]


def main():
    published = load_cdnow_summary_data_with_monetary_value().reset_index()
    published.columns = ["customer_id", "frequency", "recency", "T", "monetary_value"]
    published.to_csv(os.path.join(OUT, "cdnow_summary.csv"), index=False)

    raw = load_dataset(
        "CDNOW_sample.txt",
        header=None,
        delim_whitespace=True,
        names=["master_id", "customer_id", "date", "quantity", "amount"],
        dtype={"date": str, "amount": str},
    )
    raw["date"] = pd.to_datetime(raw["date"], format="%Y%m%d")
    # Amounts are written as the file has them (two decimals) and parsed here
    # as Rust parses them.
    raw[["customer_id", "date", "amount"]].assign(
        date=raw["date"].dt.strftime("%Y-%m-%d")
    ).to_csv(os.path.join(OUT, "cdnow_transactions.csv"), index=False)
    transactions = raw[["customer_id", "date", "amount"]].assign(amount=raw["amount"].astype(float))

    summaries = []
    by_unit_as_of = {}
    for as_of in AS_OF:
        # userql ignores orders after as_of; lifetimes keeps those later in
        # as_of's own period (it compares period starts). Dropping them first
        # makes the definitions the same.
        until = transactions[transactions["date"] <= as_of]
        for freq, unit in UNITS:
            s = summary_data_from_transaction_data(
                until,
                "customer_id",
                "date",
                monetary_value_col="amount",
                observation_period_end=as_of,
                freq=freq,
            ).reset_index()
            by_unit_as_of[(unit, as_of)] = s
            summaries.append(s.assign(unit=unit, as_of=as_of))
    pd.concat(summaries)[
        ["unit", "as_of", "customer_id", "frequency", "recency", "T", "monetary_value"]
    ].to_csv(os.path.join(OUT, "cdnow_transactions_summary.csv"), index=False, float_format=FLOAT)

    for unit, as_of in NOT_CONVERGED:
        s = by_unit_as_of[(unit, as_of)]
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                BetaGeoFitter().fit(s["frequency"], s["recency"], s["T"])
            raise SystemExit(f"expected {unit}@{as_of} not to converge")
        except ConvergenceError:
            print(f"BetaGeoFitter on {unit}@{as_of}: ConvergenceError, as expected")

    params = []
    rows = []
    for name, unit, as_of, horizon in FITS:
        data = published if as_of is None else by_unit_as_of[(unit, as_of)]
        freq = FREQ[unit]
        bg = BetaGeoFitter().fit(data["frequency"], data["recency"], data["T"])
        repeat = data[data["frequency"] > 0]
        gg = GammaGammaFitter().fit(repeat["frequency"], repeat["monetary_value"])
        for model, fitted in [("bgnbd", bg), ("gamma_gamma", gg)]:
            for param, value in fitted.params_.items():
                params.append((name, model, param, value))
        f, r, t, m = data["frequency"], data["recency"], data["T"], data["monetary_value"]
        rows.append(
            pd.DataFrame(
                {
                    "dataset": name,
                    "customer_id": data["customer_id"],
                    "horizon": horizon,
                    "p_alive": bg.conditional_probability_alive(f, r, t),
                    "expected_purchases": bg.conditional_expected_number_of_purchases_up_to_time(
                        horizon, f, r, t
                    ),
                    "expected_avg_value": gg.conditional_expected_average_profit(f, m),
                    "clv": gg.customer_lifetime_value(
                        bg, f, r, t, m, time=12, discount_rate=0.01, freq=freq
                    ).values,
                }
            )
        )
    pd.DataFrame(params, columns=["dataset", "model", "param", "value"]).to_csv(
        os.path.join(OUT, "cdnow_lifetimes_params.csv"), index=False, float_format=FLOAT
    )
    pd.concat(rows).to_csv(
        os.path.join(OUT, "cdnow_lifetimes_reference.csv"), index=False, float_format=FLOAT
    )


if __name__ == "__main__":
    main()
