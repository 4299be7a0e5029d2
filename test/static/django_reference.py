"""Runs Django's real ManifestStaticFilesStorage.post_process over a fixture tree.

Usage: python3 django_reference.py FIXTURE_DIR [--static-url /static/] [--js-modules]

Prints one JSON object: {"django": version, "paths": manifest paths, "files": {name: the
stored (rewritten) text of each .css/.js file}} or {"django": version, "error": "..."} when
Django fails the run (a missing file, too many passes). The test suite compares our output
with it byte for byte (test/static/django-parity.spec.ts).
"""
import json
import os
import shutil
import sys
import tempfile


def main(argv):
    fixture = os.path.abspath(argv[0])
    static_url = "/static/"
    js_modules = False
    rest = argv[1:]
    while rest:
        arg = rest.pop(0)
        if arg == "--static-url":
            static_url = rest.pop(0)
        elif arg == "--js-modules":
            js_modules = True
        else:
            raise SystemExit("unknown argument %r" % arg)

    import django
    from django.conf import settings

    root = tempfile.mkdtemp(prefix="django-reference-")
    try:
        settings.configure(
            DEBUG=False,
            STATIC_ROOT=root,
            STATIC_URL=static_url,
            INSTALLED_APPS=["django.contrib.staticfiles"],
        )
        django.setup()
        from django.contrib.staticfiles.storage import ManifestStaticFilesStorage
        from django.core.files.storage import FileSystemStorage

        class Storage(ManifestStaticFilesStorage):
            # Django 4.2+ only; ignored by 3.2, which has no module patterns at all.
            support_js_module_import_aggregation = js_modules

        names = []
        for folder, _dirs, files in os.walk(fixture):
            for f in files:
                names.append(os.path.relpath(os.path.join(folder, f), fixture).replace(os.sep, "/"))
        names.sort()
        # collectstatic copies the originals into STATIC_ROOT before post-processing.
        for name in names:
            os.makedirs(os.path.dirname(os.path.join(root, name)), exist_ok=True)
            shutil.copyfile(os.path.join(fixture, name), os.path.join(root, name))
        source = FileSystemStorage(location=fixture)
        storage = Storage()
        paths = {name: (source, name) for name in names}
        out = {"django": django.get_version()}
        try:
            for name, _hashed, processed in storage.post_process(paths):
                if isinstance(processed, Exception):
                    raise processed
        except Exception as exc:  # Django's own failure is a result to compare
            # The message names the storage by its repr (an address): keep it comparable.
            message = str(exc).replace(" with %r" % storage, "")
            out["error"] = "%s: %s" % (type(exc).__name__, message)
            print(json.dumps(out))
            return
        with open(os.path.join(root, "staticfiles.json"), encoding="utf-8") as fh:
            manifest = json.load(fh)
        out["paths"] = manifest["paths"]
        out["files"] = {}
        for name, stored in manifest["paths"].items():
            if name.endswith((".css", ".js")):
                with open(os.path.join(root, stored), "rb") as fh:
                    out["files"][name] = fh.read().decode("utf-8")
        print(json.dumps(out, sort_keys=True))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1:])
