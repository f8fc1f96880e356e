/* balance: the table of algorithms. */
#include "balance/balance.h"

#include <string.h>

extern const struct balancer_ops balance_round_robin, balance_weighted_round_robin,
    balance_least_conn, balance_random, balance_p2c, balance_ewma, balance_maglev, balance_sticky;

static const struct balancer_ops *const algorithms[] = {
    &balance_round_robin, &balance_weighted_round_robin,
    &balance_least_conn,  &balance_random,
    &balance_p2c,         &balance_ewma,
    &balance_maglev,      &balance_sticky,
};

#define NALGOS (sizeof(algorithms) / sizeof(algorithms[0]))

const struct balancer_ops *balance_find(const char *name)
{
    for (size_t i = 0; i < NALGOS; i++)
        if (!strcmp(algorithms[i]->name, name)) return algorithms[i];
    return NULL;
}

const char *balance_names(void)
{
    static char names[256];
    if (!names[0]) {
        for (size_t i = 0; i < NALGOS; i++) {
            if (i) strcat(names, ", ");
            strcat(names, algorithms[i]->name);
        }
    }
    return names;
}
