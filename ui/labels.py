"""Labels only the app's widgets need (the names core reports with stay in core)."""

# the Models page's learner choices, in the order it offers them
LEARNER_CHOICES = ["auto", "x", "t", "s", "dr", "cf", "drm", "cdrm"]
# the Models page's LightGBM complexity options (UpliftModel's ``tuning``)
TUNING = {"auto": "Chosen from the data", "fixed": "One fixed, regularised setting"}
