"""A linear-Gaussian inverse problem with a closed-form posterior, as an invkit plugin.

x ~ N(0, I) in ``dim_x`` dimensions, y = A x + noise with noise ~ N(0, noise_std^2 I) in
``dim_y`` dimensions, A a fixed matrix drawn from a seeded generator. The posterior p(x | y)
is Gaussian and known exactly, so a trained INN can be checked against the truth.
"""

__version__ = "0.1.0"
