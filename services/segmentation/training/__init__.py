"""Training the repayment-propensity scorecard (docs/scoring.md): binning with weight of evidence, a
logistic regression, points. Needs the ``training`` dependency group (numpy, scikit-learn); the runtime
scorer (``services/segmentation/domain/scorecard.py``) needs neither.

    python -m services.segmentation.training --data dataset.jsonl --out scorecard.json
"""
