"""Tools for people who write concept estimators: the contract's check suite.

:mod:`imageclef_concepts.utils.estimator_checks` checks that an estimator
(the library's or your own) keeps the concept-estimator contract, on images.
"""
