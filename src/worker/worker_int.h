/*
 * worker_int.h — declarations shared by the worker's C files that need the
 * PostgreSQL-free wire/auth modules.
 */
#ifndef TG_WORKER_INT_H
#define TG_WORKER_INT_H

#include "auth/jwt.h"

extern TgJwtKey tg_jwt_key;
extern bool tg_jwt_key_ok;

#endif							/* TG_WORKER_INT_H */
