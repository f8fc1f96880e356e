/* overlay: what the admin API changed, per (pool, URL): a weight, a state
 * (drain, maint, ready), a backend the API added, one being removed (it
 * drains first) or removed. It is applied to every configuration before it
 * becomes a generation: an API change (built from the generation in force)
 * and a reload (built from the file), so that an operator's change is not
 * undone by a SIGHUP. A backend the API added stays until the API removes
 * it, across reloads, unless the file drops its whole pool; if the file
 * names the same URL in the pool, it becomes the file's backend (and keeps
 * the runtime values). Control thread only. */
#ifndef USHER_ADMIN_OVERLAY_H
#define USHER_ADMIN_OVERLAY_H

#include <stdint.h>

#include "config/config.h"

enum ov_state { OV_READY, OV_DRAIN, OV_MAINT };

struct ov {
    char pool[64], url[256], name[64];
    uint8_t api;      /* added by the API */
    uint8_t removing; /* DELETE: drains, then goes */
    uint8_t removed;  /* a file backend the API removed */
    uint8_t has_weight, has_state;
    uint8_t state; /* enum ov_state */
    uint32_t weight;
    uint8_t in_file; /* the file (last read) has it */
    uint32_t file_weight;
    uint8_t file_drain;
};

/* The entry of (pool, url), or NULL. */
struct ov *ov_find(const char *pool, const char *url);
/* The entry of bc in pool, made (bc's values as the file's) if none; NULL: ENOMEM. */
struct ov *ov_get(const char *pool, const struct backend_conf *bc);
/* Forgets o (the last entry takes its place: an index loop goes back one). */
void ov_drop(struct ov *o);
uint32_t ov_count(void);
struct ov *ov_at(uint32_t i);
void ov_free(void);

#endif
