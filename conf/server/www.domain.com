# groom - server domain file (sample, inactive)
#
# The file name is the domain name: requests whose Host is www.domain.com use this file, and
# the agent whose remote is www.domain.com:PORT connects to it. Changes are picked up within
# about 10 seconds, without a reload.
# Lines starting with // are directives shown with their default value: remove the // to set
# one. Lines starting with # are explanations. The syntax is also read by groom 1.3.
groom {
    # yes to serve this domain and accept its agent; default no
    // active = no

    # agent secret: plain text, a $6$ hash from "groom password", or @/path/to/file; default ""
    # (an empty secret refuses every agent)
    // secret = ""

    # most simultaneous client requests, more get 429 (3-1000); default 20
    // concurrency = 20

    # largest request body (64kB-1GB); default: body_size of the main file (8MB)
    // body_size = 8MB

    # send X-Transaction-Id to clients; default: transaction of the main file (true)
    // transaction = true

    # networks whose X-Forwarded-For is trusted, e.g. [ "10.0.0.0/8" ]; default [ ] (nobody)
    // forward = [ ]

    # networks agents may connect from, e.g. [ "192.0.2.0/24", "2001:db8::/32" ];
    # default [ ] (any)
    // networks = [ ]

    // clients {
        # networks clients may come from; default [ ] (any)
        // networks = [ ]

        # UTC time windows clients are served in, e.g. [ "2024-01-01-2024-12-31 mon-fri 08:00-19:00" ];
        # default [ ] (always)
        // ranges = [ ]

        # Basic authentication, e.g. [ "john:$6$saltsalt$...", "@/etc/groom/www.domain.com.users" ];
        # default [ ] (no authentication)
        // credentials = [ ]

        # realm shown by the browser's login prompt; default "groom"
        // banner = "groom"
    // }
}
