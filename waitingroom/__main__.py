"""``python -m waitingroom``: one waitingroom process on TICKETING_WAITINGROOM_PORT.

``python -m waitingroom --role booking``: a booking front door only (reserve, confirm,
bookings, Stripe's webhooks): no sockets, no admitter, so booking answers never wait
behind a push to thousands of fans.

``python -m waitingroom --supervise`` (what deploy/Procfile and docker-compose.yml run):
TICKETING_WAITINGROOM_PROCESSES of them on ports from TICKETING_WAITINGROOM_PORT upward,
then TICKETING_FRONTDOOR_PROCESSES booking front doors on the ports after those,
supervised (waitingroom/processes.py).
"""

import argparse
import sys

from ticketing.config import Settings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m waitingroom",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--supervise",
        action="store_true",
        help="run TICKETING_WAITINGROOM_PROCESSES processes and supervise them",
    )
    parser.add_argument(
        "--role",
        choices=("all", "booking"),
        default="all",
        help="every route (all), or the booking front door only",
    )
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    if args.supervise:
        from waitingroom.processes import supervise

        sys.exit(supervise(settings))
    # Imported here, so that the supervisor stays a small process.
    from ticketing.web import run_app
    from waitingroom.app import create_app
    from waitingroom.open_files import raise_open_files_limit

    raise_open_files_limit()

    run_app(create_app(settings, args.role), settings, settings.waitingroom_port)


if __name__ == "__main__":
    main()
