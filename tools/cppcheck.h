/*
 * What cppcheck needs to know of Jansson's iteration macros, without
 * reading jansson.h (whose NULL-tolerant json_is_* macros make it report
 * impossible null dereferences).  Only `make lint` includes this.
 */
#define json_object_foreach(object, key, value) \
	for (key = ""; (value = NULL, key) != NULL; key = NULL)
#define json_array_foreach(array, index, value) \
	for (index = 0; (value = NULL, index) < 1; index++)
#define json_object_foreach_safe(object, n, key, value) \
	for (key = ""; (value = NULL, n = NULL, key) != NULL; key = NULL)
