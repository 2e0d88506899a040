"""A small Flask app (Debian's python3-flask) for test_real_apps.py."""
import io

from flask import Flask, Response, jsonify, request, send_file

app = Flask(__name__)


@app.route("/")
def index():
    return "Hello from Flask"


@app.route("/echo", methods=["POST"])
def echo():
    return jsonify(
        {
            "data": request.get_data(as_text=True),
            "form": request.form.to_dict(),
            "args": request.args.to_dict(),
            "path": request.path,
            "script_root": request.script_root,
            "scheme": request.scheme,
            "host": request.host,
            "remote_addr": request.remote_addr,
        }
    )


@app.route("/upload", methods=["POST"])
def upload():
    f = request.files["file"]
    data = f.read()
    return jsonify({"name": f.filename, "size": len(data), "sum": sum(data)})


@app.route("/stream")
def stream():
    def gen():
        for i in range(5):
            yield "line %d\n" % i

    return Response(gen(), mimetype="text/plain")


@app.route("/file")
def file():
    return send_file(
        io.BytesIO(b"0123456789" * 1000),
        mimetype="application/octet-stream",
        download_name="data.bin",
    )


@app.route("/error")
def error():
    raise RuntimeError("flask view failed")
