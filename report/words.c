/*
 * words.c: the report's words in English and Russian (words.h).
 */
#include <stddef.h>
#include <string.h>

#include "exit.h"
#include "words.h"

const struct dt_rpt_words dt_rpt_en = {
	"en",
	{"\xE2\x9C\x85 <b>dt run: ok</b>",
	    "\xE2\x9A\xA0\xEF\xB8\x8F <b>dt run: partial</b>",
	    "\xE2\x9D\x8C <b>dt run: FAILED</b>"},
	"Run", "Records", "Errors", "Unreadable input lines", "Tokens",
	"cost", "Latency", "max", "Duration", "Backlog", "Since the last run",
	"What failed", "interrupted", "exit", "Analyses", "mean",
	"%s in %s messages", "approximate", "part %d of %d", "h", "min", "s",
	"ms", "%d reports", "records", "failed", "tokens", "other",
	",", '.',
	{{"sentiment", "Sentiment"}, {"language", "Language"},
	    {"topics", "Top topics"}, {"action_items", "Action items"},
	    {"confidence", "Confidence"}, {"unclaimed", "unclaimed"},
	    {"leased", "leased"}, {"parked", "parked"},
	    {"skipped", "skipped (no text)"},
	    {"released", "given back for the next run"},
	    {"reused", "reused at no cost"}, {NULL, NULL}},
};

const struct dt_rpt_words dt_rpt_ru = {
	"ru",
	{"\xE2\x9C\x85 <b>Прогон dt: успешно</b>",
	    "\xE2\x9A\xA0\xEF\xB8\x8F <b>Прогон dt: частично</b>",
	    "\xE2\x9D\x8C <b>Прогон dt: СБОЙ</b>"},
	"Прогон", "Записи", "Ошибки", "Нечитаемые строки на входе", "Токены",
	"стоимость", "Задержка", "макс", "Длительность", "Очередь",
	"С прошлого прогона", "Что пошло не так", "прерван", "код",
	"Анализы", "среднее", "%s в %s сообщениях", "приблизительно",
	"часть %d из %d", "ч", "мин", "с", "мс", "отчётов: %d", "записи",
	"с ошибкой", "токены", "другие",
	"\xC2\xA0", ',',
	{{"sentiment", "Тональность"}, {"language", "Язык"},
	    {"topics", "Популярные темы"}, {"action_items", "Задачи"},
	    {"confidence", "Уверенность"}, {"unclaimed", "не взято"},
	    {"leased", "в работе"}, {"parked", "отложено"},
	    {"stored", "сохранено"}, {"failed", "с ошибкой"},
	    {"skipped", "пропущено (без текста)"},
	    {"released", "возвращено в очередь"},
	    {"reused", "повторно, без затрат"},
	    {"unchanged", "без изменений"},
	    {"analyzed", "проанализировано"},
	    {"fetched", "получено"}, {"positive", "позитив"},
	    {"neutral", "нейтрально"}, {"negative", "негатив"},
	    {"mixed", "смешанно"}},
};

const char *
dt_rpt_word(const struct dt_rpt_words *w, const char *key)
{
	int i;

	for (i = 0; i < 24 && w->names[i][0] != NULL; i++)
		if (strcmp(w->names[i][0], key) == 0)
			return w->names[i][1];
	return NULL;
}

const char *
dt_rpt_exit_words(const struct dt_rpt_words *w, int status)
{
	static const struct {
		int status;
		const char *en, *ru;
	} tab[] = {
		{DT_EXIT_PARTIAL, "some records failed",
		    "часть записей с ошибкой"},
		{DT_EXIT_USAGE, "bad command line",
		    "ошибка в командной строке"},
		{DT_EXIT_DATAERR, "bad input",
		    "плохие входные данные"},
		{DT_EXIT_UNAVAILABLE, "service unavailable",
		    "сервис недоступен"},
		{DT_EXIT_IOERR, "cannot write output",
		    "ошибка записи"},
		{DT_EXIT_TEMPFAIL, "temporary failure",
		    "временный сбой"},
		{DT_EXIT_CONFIG, "bad configuration",
		    "ошибка конфигурации"},
		{DT_EXIT_PIPE, "output closed",
		    "выход закрыт"},
	};
	size_t i;

	for (i = 0; i < sizeof(tab) / sizeof(tab[0]); i++)
		if (tab[i].status == status)
			return w == &dt_rpt_ru ? tab[i].ru : tab[i].en;
	return NULL;
}
