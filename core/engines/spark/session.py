"""A Spark session on a master URL, checked before the JVM starts: a clear error when Java is
missing, the URL is not a Spark master, or the cluster does not answer."""

from __future__ import annotations

import os
import re
import socket
import sys
import warnings
from pathlib import Path
from shutil import which

from pyspark.sql import SparkSession

from ...errors import UserError, setting

DEFAULT_MASTER = "local[*]"
_LOCAL_MASTER = re.compile(r"^local(\[(\*|\d+)(,\d+)?\])?$")
_SESSIONS: dict[str, object] = {}


def _check_java() -> None:
    home = os.environ.get("JAVA_HOME")
    if which("java") is None and not (home and Path(home, "bin", "java").exists()):
        raise UserError("the Spark engine needs a Java runtime (17 or newer) and none was found; install one "
                        "(e.g. apt-get install openjdk-17-jre-headless) or set JAVA_HOME")


def check_master(master: str) -> None:
    """Refuse a master URL Spark cannot use, and a cluster that does not answer, naming it."""
    if _LOCAL_MASTER.match(master) or master in ("yarn",) or master.startswith("k8s://"):
        return
    match = re.match(r"^(spark|sc)://(.+)$", master)
    if not match:
        raise UserError(f"{setting('spark_master')} '{master}' is not a Spark master URL; expected local[*], local[N], "
                        "spark://HOST:PORT, sc://HOST:PORT (Spark Connect), yarn or k8s://…")
    default_port = 7077 if match.group(1) == "spark" else 15002
    for address in match.group(2).split("/")[0].split(","):
        host, _, port = address.partition(":")
        try:
            port_number = int(port or default_port)
        except ValueError:
            raise UserError(f"{setting('spark_master')} '{master}' has a bad port '{port}'") from None
        try:
            socket.create_connection((host, port_number), timeout=5).close()
        except OSError as exc:
            reason = exc.strerror or str(exc) or type(exc).__name__
            raise UserError(f"{setting('spark_master')} '{master}' cannot be reached ({host}:{port_number}: {reason}); "
                            "check that the Spark master is running and the address is right") from None


def session(master: str = DEFAULT_MASTER):
    """A SparkSession on ``master`` (reused within the process)."""
    if master in _SESSIONS:
        return _SESSIONS[master]
    check_master(master)
    # PySpark 4.3 warns about pandas 3 on every conversion; the conversions used here are tested
    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)
    if master.startswith("sc://"):
        try:
            spark = SparkSession.builder.remote(master).getOrCreate()
        except Exception as exc:  # missing Connect client packages or a refused session
            raise UserError(f"could not open a Spark Connect session on '{master}': {str(exc).splitlines()[0]}") from None
    else:
        _check_java()
        # the workers must run this interpreter: it has numpy, pandas and pyarrow
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
        builder = (SparkSession.builder.master(master).appName("uplift-studio")
                   .config("spark.ui.enabled", "false")
                   .config("spark.ui.showConsoleProgress", "false")
                   .config("spark.sql.execution.arrow.pyspark.enabled", "true")
                   .config("spark.sql.execution.arrow.maxRecordsPerBatch", "50000")
                   .config("spark.sql.shuffle.partitions", os.environ.get("UPLIFT_SPARK_PARTITIONS", "8"))
                   .config("spark.driver.memory", os.environ.get("UPLIFT_SPARK_DRIVER_MEMORY", "1g")))
        try:
            spark = builder.getOrCreate()
        except Exception as exc:
            raise UserError(f"could not start Spark on '{master}': {str(exc).splitlines()[0]}") from None
        spark.sparkContext.setLogLevel("ERROR")
    _SESSIONS[master] = spark
    return spark


def stop_sessions() -> None:
    """Stop every session this process started (tests, benchmarks)."""
    for spark in _SESSIONS.values():
        spark.stop()
    _SESSIONS.clear()
