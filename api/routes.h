/* routes.h - the application's route table (routes.c): every endpoint of vigil-api.  main hands it
 * to the HTTP layer at start-up (http_start); nothing below the handlers reads it. */
#ifndef VIGIL_ROUTES_H
#define VIGIL_ROUTES_H

#include <stddef.h>

#include "router.h"

extern const route routes_table[];
extern const size_t routes_count;

#endif
