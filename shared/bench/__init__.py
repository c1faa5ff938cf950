"""Helpers of the benchmarks (`invoke bench.*`), apart from what a run imports: FLOP counts and
the CPU's peak (`roofline`), bare-framework embedding loops (`bare_embed`, run inside a service's
environment), the align benchmark (`align`), and LFW pair verification (`verification`).

Imported by pipeline/bench/ and the tests.
"""
