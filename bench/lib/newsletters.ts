/**
 * Newsletters of about 20 KB for the ingest and read benchmarks: HTML messages of paragraphs
 * of varied words and links (so compression and sanitizing see realistic text), each with
 * its own subject and Message-ID, written one file per message for the load clients.
 */
import fs from 'node:fs';
import path from 'node:path';
import { prng } from '../../test/support/mutate.js';

const WORDS = ('the of and to in a is that for it as was with be by on not he this are or his from at which but have an they you were her she there would their we him been has when who will more no if out so said what up its about into than them can only other new some could time these two may then do first any my now such like our over man me even most made after also did many before must through back years where much your way well down should because each just those people how too little state good very make world still own see men work long get here between both life being under never day same another know while last might us great old year off come since against go came right used take three states himself few house use during without again place around however home small found thought went say part once general high upon school every does got united left number course war until always away something fact though water less public put think almost hand enough far took head yet government system better set told nothing night end why called didnt eyes find going look asked later knew point next program city business give group toward young days let room president side social given present several order national possible rather second face per among form important often things looked early white case john become large big need four within felt along children saw best church ever least power development light thing seemed family interest want members mind country area others done turned although open god service certain kind problem began different door thus help sense means whole matter perhaps itself york times law human line above name example action company hands local show whether five history gave today either act feet across taken past quite anything seen having death week experience body word half really field am car words already themselves information tell together college shall money period held keep sure probably free seems real behind cannot miss political air question making office brought whose special heard major problems ago became federal moment study available known result street economic boy').split(' ');

const TARGET_BYTES = 20 * 1024;

/** Writes `count` messages to `dir` (created), addressed to `to`; returns their subjects in order. */
export function writeNewsletters(dir: string, count: number, prefix: string, to: string, seed = 14): string[] {
  fs.mkdirSync(dir, { recursive: true });
  const random = prng(seed);
  const word = () => WORDS[Math.floor(random() * WORDS.length)]!;
  const subjects: string[] = [];
  for (let n = 0; n < count; n++) {
    const subject = `${prefix} issue ${n}`;
    subjects.push(subject);
    const parts: string[] = [`<html><body><h1>${subject}</h1>`];
    let size = 0;
    let p = 0;
    while (size < TARGET_BYTES - 1200) {
      const words = Array.from({ length: 40 + Math.floor(random() * 60) }, word);
      const link = `<a href="https://news.example.com/${prefix}/${n}/story-${p}?utm_source=newsletter">${words[3]} ${words[4]}</a>`;
      const para = `<p>${words.slice(0, 20).join(' ')} ${link} ${words.slice(20).join(' ')}.</p>\r\n`;
      parts.push(para);
      size += para.length;
      p++;
    }
    parts.push('<p><a href="https://news.example.com/unsubscribe?u=12345">Unsubscribe</a></p></body></html>');
    const raw = [
      'From: "Bench Weekly" <news@bench.example.com>',
      `To: ${to}`,
      `Subject: ${subject}`,
      `Message-ID: <${prefix}-${n}@bench.example.com>`,
      'Date: Thu, 26 Nov 2026 12:00:00 +0000',
      'MIME-Version: 1.0',
      'Content-Type: text/html; charset=utf-8',
      'Content-Transfer-Encoding: 8bit',
      '',
      parts.join('\r\n'),
      '',
    ].join('\r\n');
    fs.writeFileSync(path.join(dir, String(n).padStart(6, '0')), raw);
  }
  return subjects;
}
