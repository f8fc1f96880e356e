/* log: usher's main log, one line per event on stderr.
 *
 * text: "2026-11-26T09:00:00.123Z usher[info] ..."; when stderr is the
 *       journal (JOURNAL_STREAM names it), "<6>..." instead: journald stamps
 *       the time itself and reads the priority from the <N> (sd-daemon(3)).
 * json: {"time":"2026-11-26T09:00:00.123Z","level":"info","msg":"...",
 *       "pool":"web","backend":"http://10.0.0.1:8080"}, the fields a call
 *       passes after time, level and msg (behind a <N> for the journal too).
 *
 * Lines below the level are dropped by the macros before their arguments are
 * evaluated or anything is formatted. */
#ifndef USHER_CORE_LOG_H
#define USHER_CORE_LOG_H

#include <stdatomic.h>
#include <stddef.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERR };
enum log_format { LOG_TEXT, LOG_JSON };

/* A structured field of a JSON line: "key":"value" (value NULL: left out). */
struct log_field {
    const char *key;
    const char *value;
};

/* Lines below this level are dropped; log_configure sets it (a reload too). */
extern _Atomic int log_min_level;

/* Sets the level and the format; the first call also reads JOURNAL_STREAM
 * (whether stderr is the journal). Any thread may log meanwhile. */
void log_configure(enum log_level min, enum log_format format);
/* Whether stderr is the journal (JOURNAL_STREAM matches its device:inode). */
int log_to_journal(void);

/* Writes one line; nfields fields go into a JSON line only (the text line
 * is the message alone). Call through the macros below. */
void log_emit(enum log_level level, const struct log_field *fields, size_t nfields, const char *fmt,
              ...) __attribute__((format(printf, 4, 5)));

#define LOG_ON(level) ((int)(level) >= atomic_load_explicit(&log_min_level, memory_order_relaxed))
#define log_msg(level, ...)                                                                        \
    do {                                                                                           \
        if (LOG_ON(level)) log_emit(level, NULL, 0, __VA_ARGS__);                                  \
    } while (0)
/* With fields: log_with(LOG_WARN, fields, n, "backend %s is DOWN", url). */
#define log_with(level, fields, nfields, ...)                                                      \
    do {                                                                                           \
        if (LOG_ON(level)) log_emit(level, fields, nfields, __VA_ARGS__);                          \
    } while (0)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_err(...) log_msg(LOG_ERR, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

/* Appends in (len bytes) to out as the inside of a JSON string: " and \
 * escaped, control characters and DEL as \n, \t... or \u00XX, each byte of
 * an invalid UTF-8 sequence as \ufffd; never cuts an escape or a character
 * in two. Returns the bytes written (at most cap - 1; out ends with a NUL). */
size_t log_json_escape(char *out, size_t cap, const char *in, size_t len);

#endif
