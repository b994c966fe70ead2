"""The container set-up, checked without a Docker engine: the compose file
parses and passes every variable the programs read, both services restart
and report their health, the runtime images carry only the built files and
the runtime packages of their install-deps.sh profile, the libraries the
binaries link against come from those packages, and every image and
manifest carries the Makefile's version."""
import os
import re
import subprocess

import yaml

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")


def read(path):
    with open(os.path.join(ROOT, path)) as f:
        return f.read()


def version():
    return re.search(r"^EXTVERSION\s*=\s*(\S+)", read("Makefile"), re.M).group(1)


def profile(name):
    out = subprocess.run(["bash", os.path.join(ROOT, "docker/scripts/install-deps.sh"), "--list", name],
                         capture_output=True, text=True, check=True).stdout
    return set(out.split())


def httpd_variables():
    names = set()
    for f in os.listdir(os.path.join(ROOT, "httpd")):
        if f.endswith(".c"):
            names |= set(re.findall(r'(?:getenv|env_str|env_long|env_[a-z]+)\("([A-Z][A-Z0-9_]+)"', read("httpd/" + f)))
    return names


def test_compose_passes_every_variable_and_restarts():
    c = yaml.safe_load(read("docker/compose.yaml"))
    db, httpd = c["services"]["db"], c["services"]["httpd"]
    for name, svc in (("db", db), ("httpd", httpd)):
        assert svc.get("restart") in ("unless-stopped", "always"), name
        assert svc.get("healthcheck", {}).get("test"), name
    # KUBERNETES_SERVICE_*: set by Kubernetes itself in every pod (the in-cluster API address)
    missing = {v for v in httpd_variables() if not v.startswith("KUBERNETES_")} - set(httpd["environment"])
    assert not missing, f"httpd reads variables compose does not pass: {sorted(missing)}"
    # the database side: set-up, seed and the secret settings of the worker
    for var in ("PAAS_DB_PASSWORD", "PAAS_ADMIN_EMAIL", "PAAS_ADMIN_PASSWORD", "PAAS_NODE_JOIN_TOKEN",
                "MIDTRANS_SERVER_KEY", "MIDTRANS_IS_PRODUCTION"):
        assert var in db["environment"], var
    for var in re.findall(r"\$\{?([A-Z][A-Z0-9_]+)", read("docker/db-entrypoint.sh") + read("docker/initdb.sh")):
        if var not in ("PGDATA",):
            assert var in db["environment"], var


def test_images_use_the_install_script_and_carry_only_runtime_files():
    df = read("docker/Dockerfile")
    stages = {m.group(2): m.group(1) for m in re.finditer(r"^FROM (\S+) AS (\w+)", df, re.M)}
    assert stages["db"] != "build" and stages["httpd"] != "build", "runtime stages must not carry the build stage"
    for prof in ("dev", "db", "httpd"):
        assert f"install-deps.sh {prof}" in df, prof
    assert not re.search(r"^RUN .*apt-get install", df, re.M), "packages come from install-deps.sh only"
    assert "COPY . ." in df.split("AS db")[0], "only the build stage copies the tree"


def needed_packages(binary):
    out = subprocess.run(["readelf", "-d", binary], capture_output=True, text=True, check=True).stdout
    libs = re.findall(r"NEEDED.*\[(.+)\]", out)
    paths = {}
    for line in subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[1] == "=>":
            paths[parts[0]] = parts[2]
    pkgs = set()
    for lib in libs:
        path = paths[lib]
        for p in (path, "/usr" + path, path.replace("/usr", "", 1)):
            r = subprocess.run(["dpkg", "-S", p], capture_output=True, text=True)
            if r.returncode == 0:
                pkgs.add(r.stdout.split(":")[0])
                break
        else:
            raise AssertionError(f"no package holds {path}")
    return pkgs


def test_runtime_profiles_hold_what_the_binaries_link():
    essential = {"libc6"}
    assert needed_packages(os.path.join(ROOT, "httpd/paas-httpd")) - essential <= profile("httpd")
    assert needed_packages(os.path.join(ROOT, "paas.so")) - essential <= profile("db")
    # and every package named exists in Debian
    names = sorted(profile("db") | profile("httpd"))
    out = subprocess.run(["apt-cache", "show", "--no-all-versions"] + names, capture_output=True, text=True).stdout
    assert set(re.findall(r"^Package: (\S+)", out, re.M)) >= set(names)


def test_every_image_and_manifest_carries_the_version():
    v = version()
    mk = read("Makefile")
    assert "--build-arg VERSION=$(EXTVERSION)" in mk
    for df in ("docker/Dockerfile", "agent/Dockerfile"):
        assert "ARG VERSION" in read(df) and 'image.version="$VERSION"' in read(df), df
    images = re.findall(r"image:\s*(\S+)", read("docker/k8s/paas-agent.yaml"))
    assert images and all(i.endswith(":" + v) for i in images if i.startswith("paas-")), images
    assert subprocess.run(["strings", os.path.join(ROOT, "agent/paas-agent")], capture_output=True,
                          text=True).stdout.count("paas-agent/" + v) == 1
