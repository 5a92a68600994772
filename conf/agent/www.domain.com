# groom - agent domain file (sample, inactive)
#
# One file per tunnel: the agent keeps a tunnel open to the server for each active file and
# forwards the requests it receives to the targets below. Changes are picked up within about
# 10 seconds, without a reload.
# Lines starting with // are directives shown with their default value: remove the // to set
# one. Lines starting with # are explanations. The syntax is also read by groom 1.3.
groom {
    # yes to keep a tunnel open for this domain; default no
    // active = no

    # secret sent to the server, which checks it against its own secret; default ""
    // secret = ""

    # most simultaneous requests (3-1000); default 20
    // concurrency = 20

    # not used by the agent (kept for symmetry with the server domain file); default 8MB
    // body_size = 8MB

    # not used by the agent (kept for symmetry with the server domain file); default true
    // transaction = true

    # host:port the agent dials (a name or an address); the domain it registers is this
    # file's name, sent as Host and SNI; default: the file name with port 443
    // remote = "www.domain.com:443"

    # URL path of the server's agent endpoint; default /.well-known/groom-agent
    // service = "/.well-known/groom-agent"

    # yes to skip verification of the server's certificate (self-signed trials only); default no
    // insecure = no

    # routing: the target sections listed in active are tried in order, the first whose method
    # and path match the request is used; no match gives 502
    // targets {
        # target sections to use, in order; default [ ]
        // active = [ "static", "api", "default" ]

        # the request path rewritten with the captures of path: /static/a.css goes to
        # /bucket/a.css?user=johndoe on the backend
        // static {
            // path = "^/static/(.+)$"
            // target = "http://127.0.0.1:8000/bucket/$1?user=johndoe"
        // }

        # weighted balancing: 3 requests out of 4 go to the first backend; https backend whose
        # certificate is checked (insecure = yes skips that), with a fixed Host header
        // api {
            // method = "^(GET|POST)$"
            // path = "^/api/"
            // host = "api.internal"
            // target = "https://3@10.0.0.1:8443|1@10.0.0.2:8443"
            // insecure = no
        // }

        # catch-all with the defaults spelled out
        // default {
            # regex on the request method (case-insensitive); default "" (any method)
            // method = ""

            # regex on the decoded request path, captures usable as $1 in target; default "" (any)
            // path = ""

            # Host header sent: target (backend host:port), remote or forwarded (the client's),
            # any other name, or "" (none); default target
            // host = "target"

            # backend: http(s)://[weight@]host[:port][|...] then an optional /path?query
            # template; required
            // target = "http://127.0.0.1:8080"

            # (new, ignored by groom 1.3) yes to skip verification of an https backend's
            # certificate; default no
            // insecure = no
        // }
    // }
}
