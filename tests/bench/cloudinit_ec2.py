"""Run cloud-init's Ec2 datasource once against METADATA_URL (the benchmark's peer).

Run with Debian's ``/usr/bin/python3`` (the one that has the ``cloud-init`` package):
``/usr/bin/python3 tests/bench/cloudinit_ec2.py http://127.0.0.1:PORT``. Only ``metadata_urls``
is changed from cloud-init's defaults. Prints one JSON line: found, userdata bytes, instance id.
"""

import json
import sys
import tempfile


def main() -> int:
    from cloudinit import distros, helpers
    from cloudinit.sources import DataSourceEc2

    url = sys.argv[1]
    with tempfile.TemporaryDirectory() as tmp:
        paths = helpers.Paths({"cloud_dir": tmp, "run_dir": tmp})
        distro = distros.fetch("debian")("debian", {}, paths)
        sys_cfg = {"datasource": {"Ec2": {"metadata_urls": [url]}}}
        ds = DataSourceEc2.DataSourceEc2(sys_cfg, distro, paths)
        found = bool(ds.get_data())
        userdata = ds.get_userdata_raw() if found else None
        doc = {
            "found": found,
            "userdata_bytes": len(userdata) if userdata else 0,
            "instance_id": ds.get_instance_id() if found else None,
        }
    print(json.dumps(doc))
    return 0 if found else 1


if __name__ == "__main__":
    raise SystemExit(main())
