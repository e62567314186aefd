"""Vocabulary and sentence templates for :mod:`training.synth`.

Everything here is plain data (tuples, so iteration order is fixed). Admission
note phrases carry a weight: what they add to the latent mortality risk (``risk``)
or to the log length of stay (``los``). Placeholders in braces are filled by the
generator: ``{he}``/``{He}``/``{his}``/``{him}`` pronouns,
``{n}`` (2-9), ``{nn}`` (10-60) and ``{x}`` (2.5-6.0) numbers.

Concept lexicons are pre-tokenised (tokens separated by single spaces,
punctuation as separate tokens) in natural case; i2b2 lower-cases them in
``.con`` files.
"""

from __future__ import annotations

# --------------------------------------------------------------------------
# Admission notes (mortality / length of stay)
# --------------------------------------------------------------------------

# (chief complaint, risk weight)
CHIEF_COMPLAINTS_SEVERE = (
    ("unresponsiveness", 1.2),
    ("cardiac arrest", 1.8),
    ("respiratory distress", 0.9),
    ("hematemesis", 0.8),
    ("hypotension", 0.8),
    ("altered mental status and fever", 0.7),
    ("acute onset left sided weakness", 0.8),
    ("massive hemoptysis", 1.0),
)
CHIEF_COMPLAINTS_MODERATE = (
    ("shortness of breath", 0.3),
    ("chest pain", 0.1),
    ("fever and chills", 0.2),
    ("abdominal pain", 0.1),
    ("melena", 0.3),
    ("confusion", 0.3),
    ("syncope", 0.2),
    ("cough and fever", 0.2),
    ("leg swelling", 0.1),
)
CHIEF_COMPLAINTS_MILD = (
    ("elective admission for chemotherapy", 0.0),
    ("elective knee replacement", 0.0),
    ("palpitations", 0.0),
    ("dizziness", 0.0),
    ("mechanical fall", 0.0),
    ("cellulitis of the left leg", 0.0),
    ("nausea and vomiting", 0.0),
    ("hyperglycemia", 0.0),
    ("rash", 0.0),
)

# Severe events in the HPI: (phrase, risk weight). They raise mortality risk.
SEVERE_EVENTS = (
    ("{He} had a cardiac arrest in the field with ROSC after {nn} minutes of CPR.", 2.4),
    ("{He} was intubated in the ED for hypoxemic respiratory failure.", 1.7),
    ("{He} developed septic shock requiring norepinephrine and vasopressin.", 2.0),
    ("{He} required two pressors to maintain a MAP above 65.", 1.7),
    ("{He} was found unresponsive at home by family.", 1.3),
    ("{He} presented with a massive upper GI bleed requiring {n} units of PRBCs.", 1.3),
    ("Head CT showed a large intracranial hemorrhage with midline shift.", 2.1),
    ("{He} was found to be in multiorgan failure on arrival.", 2.0),
    ("{He} is in acute liver failure with an INR of {x}.", 1.5),
    ("{He} was hypotensive to the 70s despite {n} liters of IV fluids.", 1.3),
    ("CTA showed a saddle pulmonary embolism with right heart strain.", 1.6),
    ("{He} was found to have an anterior STEMI complicated by cardiogenic shock.", 2.0),
    ("{He} was in ventricular tachycardia requiring defibrillation.", 1.6),
    ("{He} aspirated and became profoundly hypoxic requiring BiPAP.", 1.1),
    ("Blood cultures from the outside hospital are growing gram negative rods.", 0.7),
)

# Negated severe findings: same vocabulary, no risk (a bag of words is fooled).
# (phrase, clash): left out when the note already says one of the ``|``-separated
# ``clash`` words (no "denies melena" in a note whose chief complaint is melena).
NEGATED_SEVERE = (
    ("Denies chest pain.", "chest pain"),
    ("No evidence of septic shock.", "septic shock"),
    ("{He} was not intubated.", "intubated"),
    ("Head CT negative for intracranial hemorrhage.", "intracranial hemorrhage"),
    ("No pressor requirement in the ED.", "pressor"),
    ("No known metastatic disease.", "metastatic"),
    ("No history of cardiac arrest.", "cardiac arrest"),
    ("Not hypotensive.", "hypotensi"),
    ("No signs of multiorgan failure.", "multiorgan failure"),
    ("{He} denies hematemesis or melena.", "GI bleed|hematemesis|melena"),
    ("Ruled out for STEMI.", "STEMI"),
    ("No evidence of pulmonary embolism on CTA.", "pulmonary embolism"),
    ("No respiratory distress.", "respiratory"),
)

# Benign HPI content: (phrase, risk weight).
BENIGN_EVENTS = (
    ("{He} reports {n} days of productive cough.", 0.0),
    ("{He} presents with intermittent palpitations for {n} days.", 0.0),
    ("{He} reports mild dysuria and urinary frequency.", 0.0),
    ("{He} had a mechanical fall without head strike or loss of consciousness.", 0.0),
    ("{He} was sent in by {his} PCP for abnormal labs.", 0.0),
    ("{He} notes increased leg swelling over the past week.", 0.1),
    ("{He} has had poor oral intake for {n} days.", 0.1),
    ("{He} reports nausea and two episodes of nonbloody emesis.", 0.0),
    ("{He} last received chemotherapy {n} weeks ago.", 0.1),
    ("{He} was seen in clinic and found to have a low grade fever.", 0.0),
    ("In the ED {he} received {n} liters of normal saline with improvement.", 0.0),
    ("{He} reports worsening exertional dyspnea over {n} weeks.", 0.2),
    ("{He} has had loose stools after a recent course of antibiotics.", 0.1),
    ("{He} ambulates independently at baseline.", -0.3),
    ("Symptoms improved with nitroglycerin in the ED.", 0.0),
)

# Past medical history: (condition, risk weight)
PMH_SEVERE = (
    ("metastatic pancreatic cancer", 1.6),
    ("metastatic lung cancer", 1.6),
    ("metastatic breast cancer", 1.3),
    ("end stage renal disease on hemodialysis", 0.8),
    ("decompensated cirrhosis", 1.1),
    ("CHF with EF 15%", 0.8),
    ("severe COPD on home oxygen", 0.7),
    ("advanced dementia", 0.9),
    ("AML on palliative chemotherapy", 1.4),
)
PMH_COMMON = (
    ("hypertension", 0.0),
    ("hyperlipidemia", 0.0),
    ("type 2 diabetes", 0.1),
    ("hypothyroidism", 0.0),
    ("GERD", 0.0),
    ("osteoarthritis", 0.0),
    ("BPH", 0.0),
    ("depression", 0.0),
    ("asthma", 0.0),
    ("atrial fibrillation", 0.2),
    ("CAD s/p PCI", 0.2),
    ("CKD stage 3", 0.3),
    ("obesity", 0.0),
    ("gout", 0.0),
    ("anxiety", 0.0),
    ("prior stroke", 0.3),
    ("obstructive sleep apnea", 0.0),
    ("migraines", -0.1),
)

MALE_ONLY = ("BPH",)

HOME_MEDICATIONS = (
    "aspirin 81 mg daily",
    "atorvastatin 40 mg daily",
    "lisinopril 10 mg daily",
    "metformin 500 mg BID",
    "metoprolol succinate 50 mg daily",
    "furosemide 40 mg daily",
    "levothyroxine 75 mcg daily",
    "omeprazole 20 mg daily",
    "warfarin 5 mg daily",
    "apixaban 5 mg BID",
    "insulin glargine 20 units qHS",
    "amlodipine 5 mg daily",
    "tamsulosin 0.4 mg qHS",
    "sertraline 50 mg daily",
    "albuterol inhaler PRN",
    "tiotropium 18 mcg daily",
    "gabapentin 300 mg TID",
    "allopurinol 100 mg daily",
    "lactulose 30 mL TID",
    "prednisone 10 mg daily",
    "oxycodone 5 mg q6h PRN",
    "donepezil 10 mg daily",
    "clopidogrel 75 mg daily",
    "spironolactone 25 mg daily",
)
ALLERGIES = (
    "NKDA",
    "NKDA",
    "NKDA",
    "penicillin",
    "sulfa drugs",
    "codeine",
    "iodinated contrast",
    "latex",
    "vancomycin (red man syndrome)",
)
FAMILY_HISTORY = (
    "Father with MI at age {nn}.",
    "Mother with breast cancer.",
    "Noncontributory.",
    "Brother with type 2 diabetes.",
    "No family history of sudden cardiac death.",
    "Mother with stroke in her 70s.",
)

# Social history: (phrase, risk weight, log-LoS weight)
SOCIAL_HISTORY = (
    ("Lives with {his} spouse, independent in ADLs.", 0.0, -0.1),
    ("Lives with family, retired teacher.", 0.0, 0.0),
    ("Former smoker, quit {nn} years ago.", 0.0, 0.0),
    ("Works as an accountant, no tobacco or alcohol.", -0.2, -0.1),
    ("Lives alone and will likely need rehab placement.", 0.1, 0.45),
    ("Homeless, staying in a shelter.", 0.1, 0.5),
    ("Heavy alcohol use with history of withdrawal seizures.", 0.3, 0.45),
    ("Nursing home resident, bed bound at baseline.", 0.6, 0.3),
    ("Active IV drug use.", 0.2, 0.4),
    ("Lives with daughter who helps with medications.", 0.0, 0.1),
    ("Current smoker, {nn} pack years.", 0.1, 0.0),
)

# Exam fragments by acuity band: (phrase, risk weight)
EXAM_GENERAL = (
    (("Well appearing, in NAD.", 0.0), ("Comfortable, conversant.", 0.0)),
    (("Ill appearing but nontoxic.", 0.1), ("Mildly uncomfortable, diaphoretic.", 0.2)),
    (
        ("Intubated and sedated.", 0.8),
        ("Toxic appearing, mottled extremities.", 1.0),
        ("Obtunded, minimally responsive to pain.", 1.0),
    ),
)
EXAM_LUNGS = (
    "Lungs clear to auscultation bilaterally.",
    "Bibasilar crackles.",
    "Diffuse expiratory wheezes.",
    "Decreased breath sounds at the right base.",
    "Coarse breath sounds bilaterally.",
)
EXAM_CV = (
    "RRR, no murmurs.",
    "Irregularly irregular rhythm.",
    "Tachycardic, no murmurs.",
    "2/6 systolic murmur at the RUSB.",
    "JVP elevated to the jaw.",
)
EXAM_ABD = (
    "Abdomen soft, nontender, nondistended.",
    "Abdomen distended with shifting dullness.",
    "Tender in the RUQ with guarding.",
    "Soft, mild epigastric tenderness.",
)
EXAM_EXT = (
    "No edema.",
    "2+ pitting edema to the knees.",
    "Warm and well perfused.",
    "Left calf swelling and erythema.",
    "Cool extremities with delayed capillary refill.",
)

# Procedures planned at admission: (phrase, log-LoS weight)
PROCEDURES = (
    ("cardiac catheterization", 0.2),
    ("EGD", 0.15),
    ("colonoscopy", 0.15),
    ("ERCP", 0.25),
    ("diagnostic paracentesis", 0.1),
    ("thoracentesis", 0.15),
    ("bronchoscopy", 0.2),
    ("PICC line placement", 0.25),
    ("IR guided drain placement", 0.3),
    ("lumbar puncture", 0.1),
    ("TEE", 0.15),
    ("PEG tube placement", 0.45),
    ("tracheostomy", 0.6),
    ("hemodialysis catheter placement", 0.3),
)
# Surgery: (phrase, log-LoS weight)
SURGERY = (
    ("Surgery consulted for exploratory laparotomy.", 0.7),
    ("Orthopedics to take {him} for ORIF of the hip.", 0.6),
    ("CT surgery evaluating for CABG.", 0.9),
    ("Vascular surgery planning below knee amputation.", 0.8),
    ("General surgery planning laparoscopic cholecystectomy.", 0.3),
    ("Neurosurgery consulted for possible craniotomy.", 0.8),
)
# Complicating problems: (phrase, risk weight, log-LoS weight)
COMPLICATIONS = (
    ("acute kidney injury", 0.3, 0.25),
    ("C. diff colitis", 0.2, 0.3),
    ("delirium", 0.3, 0.3),
    ("new DVT", 0.1, 0.2),
    ("hospital acquired pneumonia", 0.4, 0.35),
    ("sacral decubitus ulcer", 0.3, 0.35),
    ("alcohol withdrawal", 0.2, 0.3),
    ("hyperkalemia", 0.2, 0.1),
    ("new atrial fibrillation with RVR", 0.3, 0.2),
)
# Short-stay signals: (phrase, log-LoS weight)
SHORT_STAY = (
    ("Observation overnight, likely discharge tomorrow.", -0.6),
    ("Rule out MI with serial troponins, anticipate discharge in 24 hours.", -0.5),
    ("Elective admission, expected discharge after treatment.", -0.5),
    ("Home with PT follow up if stable.", -0.3),
)
PLAN_ITEMS = (
    "Continue home medications.",
    "Trend troponins.",
    "Follow up blood cultures.",
    "Start IV ceftriaxone.",
    "Gentle IV fluids.",
    "Diurese with IV furosemide.",
    "Heparin drip.",
    "Monitor on telemetry.",
    "PT/OT consult.",
    "Insulin sliding scale.",
    "Repeat CBC in AM.",
    "Nutrition consult.",
    "Pain control.",
    "DVT prophylaxis with SC heparin.",
    "Start IV vancomycin and zosyn.",
    "GI consulted.",
    "Cardiology consulted.",
)

# --------------------------------------------------------------------------
# i2b2-style sentences (NER and relations)
# --------------------------------------------------------------------------

PROBLEMS = (
    "chest pain",
    "acute kidney injury",
    "pneumonia",
    "hypotension",
    "atrial fibrillation",
    "shortness of breath",
    "urinary tract infection",
    "lower extremity edema",
    "hyperkalemia",
    "anemia",
    "GI bleed",
    "nausea",
    "vomiting",
    "fever",
    "delirium",
    "sepsis",
    "DVT",
    "pulmonary embolism",
    "COPD exacerbation",
    "CHF exacerbation",
    "rash",
    "hypoglycemia",
    "altered mental status",
    "left lower lobe infiltrate",
    "pleural effusion",
    "cellulitis",
    "hypertension",
    "diabetes",
    "abdominal pain",
    "diarrhea",
    "C. diff colitis",
    "pancreatitis",
    "cholecystitis",
    "hyponatremia",
    "thrombocytopenia",
    "bradycardia",
    "tachycardia",
    "respiratory failure",
    "small bowel obstruction",
    "bacteremia",
    "NSTEMI",
    "headache",
    "hematuria",
    "dehydration",
    "cirrhosis",
    "ascites",
    "pericardial effusion",
    "wound infection",
    "renal failure",
    "hypoxia",
    "constipation",
    "dysuria",
    "elevated liver enzymes",
    "right MCA stroke",
    "seizures",
    "agitation",
    "insomnia",
)
TESTS = (
    "chest x-ray",
    "CT of the head",
    "EKG",
    "echocardiogram",
    "blood cultures",
    "urinalysis",
    "CBC",
    "troponin",
    "lactate",
    "abdominal ultrasound",
    "MRI of the spine",
    "CT angiogram",
    "lipase",
    "BNP",
    "arterial blood gas",
    "urine culture",
    "LFTs",
    "CT of the abdomen and pelvis",
    "stress test",
    "head CT",
    "a repeat chest x-ray",
    "lower extremity dopplers",
    "a sputum culture",
    "serum potassium",
    "creatinine",
    "TSH",
    "INR",
    "a cardiac catheterization",
    "an EEG",
    "a lumbar puncture",
    "renal ultrasound",
    "a bone scan",
    "colonoscopy",
    "the stool studies",
)
TREATMENTS = (
    "IV vancomycin",
    "Lasix",
    "aspirin",
    "a heparin drip",
    "metoprolol",
    "levofloxacin",
    "insulin sliding scale",
    "packed red blood cells",
    "normal saline",
    "nitroglycerin",
    "morphine",
    "CABG",
    "coumadin",
    "prednisone",
    "albuterol nebulizers",
    "kayexalate",
    "lisinopril",
    "ceftriaxone",
    "zosyn",
    "hemodialysis",
    "intubation",
    "IV fluids",
    "oxygen",
    "Flagyl",
    "PO vancomycin",
    "lactulose",
    "Tylenol",
    "Ativan",
    "haloperidol",
    "diltiazem",
    "amiodarone",
    "an insulin drip",
    "BiPAP",
    "a PICC line",
    "Plavix",
    "potassium chloride",
    "Coreg",
    "octreotide",
    "a blood transfusion",
    "Zofran",
    "steroids",
    "chemotherapy",
    "radiation therapy",
    "physical therapy",
    "colace",
)

# Relation templates by type: the relation holds between the treatment ({tr}) or
# test ({te}) and the problem ({pr}); for PIP between {pr} and {pr2}.
RELATION_TEMPLATES = {
    "TrAP": (
        "{tr} was started for {pr} .",
        "{he} was given {tr} for {pr} .",
        "{he} was treated with {tr} for {pr} .",
        "{tr} was continued for {pr} .",
        "for {pr} , {he} received {tr} .",
        "{he} was placed on {tr} for presumed {pr} .",
        "{tr} was administered for {pr} .",
    ),
    "TrIP": (
        "{pr} improved with {tr} .",
        "{his} {pr} resolved after {tr} .",
        "{pr} responded well to {tr} .",
        "after {tr} , {his} {pr} improved .",
        "{pr} was much better following {tr} .",
    ),
    "TrWP": (
        "{pr} worsened after {tr} .",
        "{pr} did not improve despite {tr} .",
        "{his} {pr} persisted despite {tr} .",
        "{pr} progressed in spite of {tr} .",
    ),
    "TrNAP": (
        "{tr} was held because of {pr} .",
        "{tr} was not given due to {pr} .",
        "{tr} was deferred in the setting of {pr} .",
        "{he} did not receive {tr} given {pr} .",
    ),
    "TrCP": (
        "{tr} caused {pr} .",
        "{he} developed {pr} secondary to {tr} .",
        "{pr} was thought to be due to {tr} .",
        "{tr} was complicated by {pr} .",
        "{pr} was attributed to {tr} .",
    ),
    "TeRP": (
        "{te} showed {pr} .",
        "{te} revealed {pr} .",
        "{te} was notable for {pr} .",
        "{te} was positive for {pr} .",
        "{te} was consistent with {pr} .",
    ),
    "TeCP": (
        "{te} was ordered to evaluate {pr} .",
        "{te} was obtained to rule out {pr} .",
        "{te} was checked given concern for {pr} .",
        "{te} was sent to assess for {pr} .",
    ),
    "PIP": (
        "{pr} in the setting of {pr2} .",
        "{pr} likely secondary to {pr2} .",
        "{pr} most likely due to {pr2} .",
        "{pr} was felt to be related to {pr2} .",
    ),
}

# Sentences with two relations (and usually a "none" candidate pair too).
COMPOUND_TEMPLATES = (
    ("{te} showed {pr} and {tr} was started .", (("te", "TeRP", "pr"), ("tr", "TrAP", "pr"))),
    ("{pr} improved with {tr} , but {he} developed {pr2} .", (("tr", "TrIP", "pr"),)),
    (
        "{te} was ordered to evaluate {pr} ; {tr} was held because of {pr2} .",
        (("te", "TeCP", "pr"), ("tr", "TrNAP", "pr2")),
    ),
    ("{tr} was started for {pr} and {te} revealed {pr2} .", (("tr", "TrAP", "pr"), ("te", "TeRP", "pr2"))),
    ("{he} was noted to have {pr} and {pr2} ; {tr} was given for {pr2} .", (("tr", "TrAP", "pr2"),)),
    ("{pr} in the setting of {pr2} , treated with {tr} .", (("pr", "PIP", "pr2"), ("tr", "TrAP", "pr"))),
    ("{pr} worsened after {tr} , so {tr2} was started .", (("tr", "TrWP", "pr"),)),
)

# Sentences with entities but no relation between them.
NO_RELATION_TEMPLATES = (
    "history of {pr} and {pr2} .",
    "{he} denies {pr} or {pr2} .",
    "{he} has {pr} ; {te} is pending .",
    "{tr} was given in the emergency department ; {pr} was also noted .",
    "{te} and {te2} were sent on admission .",
    "home medications include {tr} and {tr2} .",
    "{pr} was discussed with the family , and {te} will be repeated tomorrow .",
    "{te} was unremarkable .",
    "{he} was continued on {tr} .",
    "{he} complained of {pr} .",
    "no evidence of {pr} .",
    "{te} will be followed up as an outpatient .",
    "{pr} , {pr2} , and {pr3} .",
    "{he} will continue {tr} at home and follow up for {te} .",
)

# Sentences with no entities at all.
NO_ENTITY_SENTENCES = (
    "the patient was seen and examined .",
    "discussed with the family at the bedside .",
    "will continue to follow .",
    "{he} is full code .",
    "{he} was admitted to the medicine service .",
    "{he} was transferred to the floor in stable condition .",
    "{he} was discharged to home with services .",
    "follow up with {his} primary care physician in one week .",
    "the remainder of the hospital course was uneventful .",
    "{he} tolerated a regular diet .",
    "{he} lives with {his} daughter .",
    "hospital course :",
    "discharge instructions :",
)

RECORD_HEADERS = ("Admission Date :", "Discharge Date :", "HISTORY OF PRESENT ILLNESS :")

# Optional sentence openers.
OPENERS = (
    "on admission ,",
    "subsequently ,",
    "in the ED ,",
    "on hospital day {n} ,",
    "overnight ,",
    "at the outside hospital ,",
    "initially ,",
)
