"""Instrument identifiers: CUSIP and ISIN check digits and standardization, per value and
vectorized over Arrow columns.
"""
