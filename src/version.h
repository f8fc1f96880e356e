/* version: the one place the version number is written. */
#ifndef USHER_VERSION_H
#define USHER_VERSION_H
#define USHER_VERSION "0.1.0"
#endif
