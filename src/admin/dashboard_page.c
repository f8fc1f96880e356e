/* dashboard_page: a placeholder until the dashboard is built into the binary
 * (the dashboard's build step replaces this file with a generated one). */
#include "admin/dashboard.h"

const unsigned char dashboard_html[] =
    "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>usher</title></head>"
    "<body><h1>usher</h1><p>The dashboard is not built into this binary. The API is at "
    "<a href=\"/api/v1/pools\">/api/v1/pools</a> and the metrics at "
    "<a href=\"/metrics\">/metrics</a>.</p></body></html>\n";
const size_t dashboard_html_len = sizeof(dashboard_html) - 1;
