"""Fixed lookup tables of the demo crime rows: categories, location descriptions, street names.

Each category is one IUCR code with its Primary Type, Description and FBI code, in the
style of the City of Chicago crime export. It also sets the share of incidents and the
arrest and domestic rates that the demo draws from.
"""

from __future__ import annotations

from dataclasses import dataclass

VIOLENT_FBI_CODES: frozenset[str] = frozenset({"01A", "02", "03", "04A", "04B"})
"""FBI codes counted as violent: homicide, criminal sexual assault, robbery, aggravated
assault and aggravated battery."""


@dataclass(frozen=True)
class _Category:
    """One row of the crime category table."""

    iucr: str
    primary_type: str
    description: str
    fbi_code: str
    share: float  # Share of all incidents. Violent shares add up to 0.25, the rest to 0.75.
    arrest_rate: float
    domestic_rate: float


CATEGORIES: tuple[_Category, ...] = (
    _Category("0110", "HOMICIDE", "FIRST DEGREE MURDER", "01A", 0.005, 0.40, 0.05),
    _Category("0265", "CRIMINAL SEXUAL ASSAULT", "AGGRAVATED: OTHER", "02", 0.005, 0.10, 0.25),
    _Category("0281", "CRIMINAL SEXUAL ASSAULT", "NON-AGGRAVATED", "02", 0.010, 0.08, 0.30),
    _Category("031A", "ROBBERY", "ARMED: HANDGUN", "03", 0.035, 0.08, 0.01),
    _Category("031B", "ROBBERY", "ARMED: OTHER DANGEROUS WEAPON", "03", 0.010, 0.10, 0.01),
    _Category("0320", "ROBBERY", "STRONG ARM - NO WEAPON", "03", 0.025, 0.12, 0.02),
    _Category("051A", "ASSAULT", "AGGRAVATED: HANDGUN", "04A", 0.025, 0.15, 0.10),
    _Category("051B", "ASSAULT", "AGGRAVATED: OTHER DANG WEAPON", "04A", 0.015, 0.20, 0.20),
    _Category("0520", "ASSAULT", "AGGRAVATED:KNIFE/CUTTING INSTR", "04A", 0.010, 0.25, 0.25),
    _Category("041A", "BATTERY", "AGGRAVATED: HANDGUN", "04B", 0.050, 0.12, 0.05),
    _Category("0420", "BATTERY", "AGGRAVATED:KNIFE/CUTTING INSTR", "04B", 0.030, 0.25, 0.30),
    _Category("0430", "BATTERY", "AGGRAVATED: OTHER DANG WEAPON", "04B", 0.030, 0.22, 0.30),
    _Category("0810", "THEFT", "OVER $500", "06", 0.100, 0.04, 0.03),
    _Category("0820", "THEFT", "$500 AND UNDER", "06", 0.110, 0.08, 0.04),
    _Category("0860", "THEFT", "RETAIL THEFT", "06", 0.050, 0.45, 0.00),
    _Category("0890", "THEFT", "FROM BUILDING", "06", 0.020, 0.05, 0.05),
    _Category("0610", "BURGLARY", "FORCIBLE ENTRY", "05", 0.040, 0.05, 0.02),
    _Category("0620", "BURGLARY", "UNLAWFUL ENTRY", "05", 0.020, 0.06, 0.03),
    _Category("0910", "MOTOR VEHICLE THEFT", "AUTOMOBILE", "07", 0.050, 0.03, 0.01),
    _Category("0930", "MOTOR VEHICLE THEFT", "TRUCK, BUS, MOTOR HOME", "07", 0.010, 0.03, 0.01),
    _Category("0486", "BATTERY", "DOMESTIC BATTERY SIMPLE", "08B", 0.090, 0.20, 1.00),
    _Category("0460", "BATTERY", "SIMPLE", "08B", 0.060, 0.15, 0.05),
    _Category("0560", "ASSAULT", "SIMPLE", "08A", 0.070, 0.10, 0.15),
    _Category("1320", "CRIMINAL DAMAGE", "TO VEHICLE", "14", 0.050, 0.02, 0.02),
    _Category("1310", "CRIMINAL DAMAGE", "TO PROPERTY", "14", 0.040, 0.05, 0.10),
    _Category("2826", "OTHER OFFENSE", "HARASSMENT BY ELECTRONIC MEANS", "26", 0.020, 0.02, 0.30),
    _Category("1330", "CRIMINAL TRESPASS", "TO LAND", "26", 0.010, 0.50, 0.02),
    _Category("1811", "NARCOTICS", "POSS: CANNABIS 30GMS OR LESS", "18", 0.005, 0.95, 0.00),
    _Category("2027", "NARCOTICS", "POSS: CRACK", "18", 0.005, 0.97, 0.00),
)

# Location Description choices and weights per FBI code.
STREET_LOCATIONS = (("STREET", 0.45), ("SIDEWALK", 0.25), ("ALLEY", 0.10),
                    ("APARTMENT", 0.10), ("PARKING LOT / GARAGE (NON RESIDENTIAL)", 0.10))
HOME_LOCATIONS = (("APARTMENT", 0.50), ("RESIDENCE", 0.40), ("RESIDENCE - PORCH / HALLWAY", 0.10))
LOCATIONS_BY_FBI_CODE: dict[str, tuple[tuple[str, float], ...]] = {
    "01A": (("STREET", 0.60), ("ALLEY", 0.15), ("APARTMENT", 0.15), ("AUTO", 0.10)),
    "02": HOME_LOCATIONS,
    "03": STREET_LOCATIONS,
    "04A": STREET_LOCATIONS,
    "04B": STREET_LOCATIONS,
    "06": (("STREET", 0.30), ("SMALL RETAIL STORE", 0.25), ("DEPARTMENT STORE", 0.15),
           ("RESTAURANT", 0.10), ("RESIDENCE", 0.10),
           ("PARKING LOT / GARAGE (NON RESIDENTIAL)", 0.10)),
    "05": (("APARTMENT", 0.40), ("RESIDENCE", 0.35), ("COMMERCIAL / BUSINESS OFFICE", 0.15),
           ("RESIDENCE - GARAGE", 0.10)),
    "07": (("STREET", 0.75), ("PARKING LOT / GARAGE (NON RESIDENTIAL)", 0.20),
           ("RESIDENCE - GARAGE", 0.05)),
    "08B": (("APARTMENT", 0.40), ("RESIDENCE", 0.25), ("STREET", 0.20), ("SIDEWALK", 0.15)),
    "08A": (("STREET", 0.30), ("APARTMENT", 0.25), ("RESIDENCE", 0.20),
            ("SMALL RETAIL STORE", 0.15), ("SCHOOL, PUBLIC, BUILDING", 0.10)),
    "14": (("STREET", 0.50), ("RESIDENCE", 0.25), ("APARTMENT", 0.15),
           ("PARKING LOT / GARAGE (NON RESIDENTIAL)", 0.10)),
    "26": (("RESIDENCE", 0.45), ("APARTMENT", 0.35), ("STREET", 0.20)),
    "18": (("STREET", 0.60), ("SIDEWALK", 0.30), ("ALLEY", 0.10)),
}


# Street names of the synthetic hundred-block addresses.
STREET_NAMES: tuple[str, ...] = (
    "DEMO", "SAMPLE", "MOCKUP", "PLACEHOLDER", "FICTION", "SYNTHETIC",
    "EXAMPLE", "TESTBED", "DUMMY", "PROTOTYPE", "SIMULATED", "IMAGINARY",
)
