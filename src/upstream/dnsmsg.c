/* dnsmsg: reading a DNS response (see dnsmsg.h). */
#include "upstream/dnsmsg.h"

#include <string.h>

#define HEADER_LEN 12
#define MAX_POINTERS 64 /* compression pointers followed in one name */

struct reader {
    const uint8_t *msg;
    size_t len;
    size_t off;
};

static int get16(struct reader *r, uint16_t *v)
{
    if (r->len - r->off < 2) return -1;
    *v = (uint16_t)(r->msg[r->off] << 8 | r->msg[r->off + 1]);
    r->off += 2;
    return 0;
}

static int get32(struct reader *r, uint32_t *v)
{
    if (r->len - r->off < 4) return -1;
    const uint8_t *p = r->msg + r->off;
    *v = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
    r->off += 4;
    return 0;
}

static char lower(uint8_t c)
{
    return (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
}

/* Reads the name at r->off (RFC 1035 4.1.4: labels, or a pointer to an
 * earlier name) into out (DNS_NAME_MAX + 1 bytes, lower case, labels joined
 * by dots, "" for the root), and moves r->off past it. A pointer must point
 * backwards, so that no name can loop. */
static int get_name(struct reader *r, char *out, const char **why)
{
    size_t pos = r->off, end = 0, n = 0;
    int jumped = 0, pointers = 0;
    for (;;) {
        if (pos >= r->len) {
            *why = "a name runs past the end of the message";
            return -1;
        }
        uint8_t l = r->msg[pos];
        if ((l & 0xc0) == 0xc0) {
            if (pos + 1 >= r->len) {
                *why = "a name runs past the end of the message";
                return -1;
            }
            size_t to = (size_t)(l & 0x3f) << 8 | r->msg[pos + 1];
            if (to >= pos || ++pointers > MAX_POINTERS) {
                *why = "a compressed name points forwards or loops";
                return -1;
            }
            if (!jumped) end = pos + 2;
            jumped = 1;
            pos = to;
            continue;
        }
        if (l & 0xc0) {
            *why = "a name has a label type that does not exist";
            return -1;
        }
        if (l == 0) {
            if (!jumped) end = pos + 1;
            break;
        }
        if (pos + 1 + l > r->len) {
            *why = "a name runs past the end of the message";
            return -1;
        }
        if (n + (n ? 1 : 0) + l > DNS_NAME_MAX) {
            *why = "a name is longer than 255 bytes";
            return -1;
        }
        if (n) out[n++] = '.';
        for (uint8_t i = 0; i < l; i++) {
            uint8_t c = r->msg[pos + 1 + i];
            /* host names only: a dot, a space or a control byte inside a
             * label would make another name when it is written out */
            if (c <= ' ' || c == '.' || c >= 0x7f) {
                *why = "a name has a byte that is not printable ASCII, or a dot, inside a label";
                return -1;
            }
            out[n++] = lower(c);
        }
        pos += 1 + (size_t)l;
    }
    out[n] = 0;
    r->off = end;
    return 0;
}

/* Reads one resource record; keeps it in a when it is an A, AAAA or SRV. */
static int get_record(struct reader *r, struct dns_answer *a, int answer, const char **why)
{
    struct dns_record rec;
    uint16_t type, klass, rdlen;
    memset(&rec, 0, sizeof(rec));
    if (get_name(r, rec.owner, why) < 0) return -1;
    if (get16(r, &type) < 0 || get16(r, &klass) < 0 || get32(r, &rec.ttl) < 0 ||
        get16(r, &rdlen) < 0) {
        *why = "a record is cut short";
        return -1;
    }
    if (r->len - r->off < rdlen) {
        *why = "a record's data runs past the end of the message";
        return -1;
    }
    size_t data = r->off, data_end = r->off + rdlen;
    r->off = data_end;
    if (klass != 1 || (type != DNS_T_A && type != DNS_T_AAAA && type != DNS_T_SRV)) return 0;
    /* RFC 2181 8: a TTL with the top bit set is read as 0 */
    if (rec.ttl > 0x7fffffffu) rec.ttl = 0;
    rec.type = type;
    rec.answer = (uint8_t)answer;
    if (type == DNS_T_A) {
        if (rdlen != 4) {
            *why = "an A record's data is not 4 bytes";
            return -1;
        }
        memcpy(rec.u.a, r->msg + data, 4);
    } else if (type == DNS_T_AAAA) {
        if (rdlen != 16) {
            *why = "an AAAA record's data is not 16 bytes";
            return -1;
        }
        memcpy(rec.u.aaaa, r->msg + data, 16);
    } else {
        /* the target is read within the record's data (RFC 2782: not
         * compressed, but readers accept pointers) */
        struct reader d = {r->msg, data_end, data};
        if (get16(&d, &rec.u.srv.priority) < 0 || get16(&d, &rec.u.srv.weight) < 0 ||
            get16(&d, &rec.u.srv.port) < 0 || get_name(&d, rec.u.srv.target, why) < 0 ||
            d.off != data_end) {
            *why = "an SRV record's data is malformed";
            return -1;
        }
    }
    if (a->nrecords >= DNS_MAX_RECORDS) {
        a->dropped++;
        return 0;
    }
    a->records[a->nrecords++] = rec;
    return 0;
}

int dns_parse_answer(const uint8_t *msg, size_t len, struct dns_answer *a, const char **why)
{
    static const char *unused;
    if (!why) why = &unused;
    a->nrecords = a->dropped = 0;
    struct reader r = {msg, len, 0};
    uint16_t id, flags, qd, an, ns, ar;
    if (get16(&r, &id) < 0 || get16(&r, &flags) < 0 || get16(&r, &qd) < 0 || get16(&r, &an) < 0 ||
        get16(&r, &ns) < 0 || get16(&r, &ar) < 0) {
        *why = "shorter than a DNS header";
        return -1;
    }
    if (!(flags & 0x8000)) {
        *why = "a query, not a response";
        return -1;
    }
    a->id = id;
    a->rcode = (uint8_t)(flags & 0x0f);
    a->truncated = (uint8_t) !!(flags & 0x0200);
    char name[DNS_NAME_MAX + 1];
    for (uint16_t i = 0; i < qd; i++) {
        uint16_t t, c;
        if (get_name(&r, name, why) < 0) return -1;
        if (get16(&r, &t) < 0 || get16(&r, &c) < 0) {
            *why = "the question is cut short";
            return -1;
        }
    }
    uint32_t total = (uint32_t)an + ns + ar;
    for (uint32_t i = 0; i < total; i++) {
        /* the authority section holds no A, AAAA or SRV we use: read, not kept */
        int section = i < an ? 1 : i < (uint32_t)an + ns ? 2 : 3;
        uint32_t kept = a->nrecords, dropped = a->dropped;
        if (get_record(&r, a, section == 1, why) < 0) {
            /* a truncated answer may end inside a record: keep what came whole */
            if (a->truncated) return 0;
            return -1;
        }
        if (section == 2) a->nrecords = kept, a->dropped = dropped;
    }
    return 0;
}

int dns_name_eq(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la && a[la - 1] == '.') la--;
    if (lb && b[lb - 1] == '.') lb--;
    if (la != lb) return 0;
    for (size_t i = 0; i < la; i++)
        if (lower((uint8_t)a[i]) != lower((uint8_t)b[i])) return 0;
    return 1;
}
