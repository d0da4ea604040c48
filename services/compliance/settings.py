"""Compliance settings: the shared ones (shared/settings.py) plus its own, prefixed COMPLIANCE_."""

from typing import ClassVar

from pydantic import Field

from shared.settings import ServiceSettings, service_config


class Settings(ServiceSettings):
    model_config = service_config("compliance")
    service_name: ClassVar[str] = "compliance"


    # The holiday calendar (HOUSE-HOLIDAY) of a tenant that chose none (PUT /v1/calendar): an ISO 3166 country
    # whose public holidays the `holidays` package knows, or "none" for no public holidays.
    default_calendar_country: str = Field("CN", min_length=2, max_length=8)
    # How often the complaint clocks on /metrics (compliance_complaints_*) are read from the database
    # (workers/clocks.py); a failed read is logged and tried again after this long, the last values stay.
    complaint_clocks_interval_s: float = Field(30.0, gt=0, le=3600)
