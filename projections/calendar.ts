import { boolean, type Column, date, integer, type Row, text } from "./table.ts"

const DAY_NAMES = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]

/** Fixed-date public holidays (MM-DD) flagged in `dim_date.is_holiday`. */
export const HOLIDAYS: ReadonlyArray<string> = ["01-01", "05-01", "12-25", "12-26"]

/** The columns of every `dim_date`: one row per UTC day, keyed `yyyymmdd`. */
export const dimDateColumns: ReadonlyArray<Column> = [
  integer("date_key"),
  date("full_date"),
  integer("day_of_week"),
  text("day_name"),
  integer("month"),
  integer("quarter"),
  integer("year"),
  boolean("is_weekend"),
  boolean("is_holiday")
]

/** `yyyymmdd` of an instant's UTC day. */
export const dateKey = (iso: string): number => {
  const date = new Date(iso)
  return date.getUTCFullYear() * 10000 + (date.getUTCMonth() + 1) * 100 + date.getUTCDate()
}

/** Rows made, by day: a log holds few days and many events, and rows are never changed. */
const dateRows = new Map<string, Row>()

/** The `dim_date` row of an instant's UTC day. */
export const dateRow = (iso: string): Row => {
  const date = new Date(iso)
  const fullDate = date.toISOString().slice(0, 10)
  const made = dateRows.get(fullDate)
  if (made !== undefined) return made
  const dayOfWeek = ((date.getUTCDay() + 6) % 7) + 1
  const month = date.getUTCMonth() + 1
  const row: Row = {
    date_key: dateKey(iso),
    full_date: fullDate,
    day_of_week: dayOfWeek,
    day_name: DAY_NAMES[dayOfWeek - 1] as string,
    month,
    quarter: Math.ceil(month / 3),
    year: date.getUTCFullYear(),
    is_weekend: dayOfWeek >= 6,
    is_holiday: HOLIDAYS.includes(fullDate.slice(5))
  }
  if (dateRows.size >= 100_000) dateRows.clear()
  dateRows.set(fullDate, Object.freeze(row))
  return row
}
