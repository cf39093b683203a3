#!/usr/bin/env python3
"""Write a static PEP 503 simple index over a directory of wheels and sdists.

Usage: scripts/lab/make-simple-index.py DIST_DIR OUT_DIR [--files-url URL] [--yank FILE[:REASON]]...

Writes (a tree any static HTTP server can serve, e.g. scripts/lab/start-static-index.sh):
  OUT_DIR/simple/index.html             the project list
  OUT_DIR/simple/<normalised>/index.html one <a> per file: href FILES#sha256=HEX,
                                        data-requires-python (from the wheel's METADATA),
                                        data-dist-info-metadata and data-core-metadata (PEP 658/714,
                                        wheels only), data-yanked for --yank
  OUT_DIR/files/<file>                  copies of DIST_DIR's files
  OUT_DIR/files/<wheel>.metadata        the wheel's METADATA (PEP 658)
FILES is ../../files/<file> (relative, as pypiserver writes), or URL/<file> with --files-url
(absolute, on another host: where an index's download URLs point elsewhere, as `files_url`
configures for depproxy).
"""
import argparse, hashlib, html, os, re, shutil, zipfile


def normalise(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def project_of(file):
    if file.endswith(".whl"):
        return file.split("-")[0]
    stem = file[: -len(".tar.gz")] if file.endswith(".tar.gz") else file.rsplit(".", 1)[0]
    return stem.rsplit("-", 1)[0]


def wheel_metadata(path):
    with zipfile.ZipFile(path) as wheel:
        name = next(n for n in wheel.namelist() if re.fullmatch(r"[^/]+\.dist-info/METADATA", n))
        return wheel.read(name)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dist_dir")
    ap.add_argument("out_dir")
    ap.add_argument("--files-url")
    ap.add_argument("--yank", action="append", default=[])
    args = ap.parse_args()
    yanked = dict((item.split(":", 1) + [""])[:2] for item in args.yank)
    files_dir = os.path.join(args.out_dir, "files")
    os.makedirs(files_dir, exist_ok=True)
    projects = {}
    for file in sorted(os.listdir(args.dist_dir)):
        if not re.search(r"\.(whl|tar\.gz|zip)$", file):
            continue
        shutil.copyfile(os.path.join(args.dist_dir, file), os.path.join(files_dir, file))
        projects.setdefault(normalise(project_of(file)), []).append(file)
    for project, files in projects.items():
        links = []
        for file in files:
            path = os.path.join(files_dir, file)
            digest = hashlib.sha256(open(path, "rb").read()).hexdigest()
            href = f"{args.files_url.rstrip('/')}/{file}" if args.files_url else f"../../files/{file}"
            attributes = ""
            if file.endswith(".whl"):
                metadata = wheel_metadata(path)
                open(path + ".metadata", "wb").write(metadata)
                meta_digest = hashlib.sha256(metadata).hexdigest()
                attributes += f' data-dist-info-metadata="sha256={meta_digest}" data-core-metadata="sha256={meta_digest}"'
                requires = re.search(rb"^Requires-Python: *(.+?)\r?$", metadata, re.M)
                if requires:
                    attributes += f' data-requires-python="{html.escape(requires[1].decode())}"'
            if file in yanked:
                attributes += f' data-yanked="{html.escape(yanked[file])}"'
            links.append(f'    <a href="{html.escape(href)}#sha256={digest}"{attributes}>{html.escape(file)}</a><br/>')
        page = os.path.join(args.out_dir, "simple", project)
        os.makedirs(page, exist_ok=True)
        with open(os.path.join(page, "index.html"), "w") as f:
            f.write("<!DOCTYPE html>\n<html>\n  <head>\n"
                    '    <meta name="pypi:repository-version" content="1.1">\n'
                    f"    <title>Links for {project}</title>\n  </head>\n  <body>\n"
                    f"    <h1>Links for {project}</h1>\n" + "\n".join(links) + "\n  </body>\n</html>\n")
    with open(os.path.join(args.out_dir, "simple", "index.html"), "w") as f:
        f.write("<!DOCTYPE html>\n<html>\n  <head><title>Simple index</title></head>\n  <body>\n"
                + "".join(f'    <a href="{p}/">{p}</a><br/>\n' for p in sorted(projects))
                + "  </body>\n</html>\n")


if __name__ == "__main__":
    main()
