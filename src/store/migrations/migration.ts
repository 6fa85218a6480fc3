/** A migration is SQL per dialect; each list only ever grows at its end. */
export interface Migration {
  name: string;
  sqlite: string;
}
